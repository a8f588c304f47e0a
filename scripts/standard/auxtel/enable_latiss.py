"""auxtel/enable_latiss.py: enable LATISS, configured as Rubin's EnableLATISS."""

from __future__ import annotations

from typing import ClassVar

from obsq.scripts.enable import EnableGroup


class EnableLATISS(EnableGroup):
    description = "Enable LATISS (here ATCamera and ATSpectrograph; the header service and OODS are named and skipped)."
    group = ("atcamera", "atspectrograph", "atheaderservice", "atoods")
    configurable = ("atcamera", "atspectrograph", "atoods")
    present: ClassVar[dict[str, str]] = {"atcamera": "ATCamera", "atspectrograph": "ATSpectrograph"}
