"""Rubin's camera image types (ts_observatory_control BaseCamera.get_image_types), shared by the camera and scripts."""

from __future__ import annotations

#: Every image type a camera takes; the first two keep the shutter shut.
IMAGE_TYPES = ("BIAS", "DARK", "FLAT", "OBJECT", "ENGTEST", "ACQ", "CWFS", "FOCUS", "STUTTERED", "INDOME", "CBP",
               "SFLAT", "DFLAT")  # fmt: skip
SHUTTER_CLOSED_TYPES = ("BIAS", "DARK")
