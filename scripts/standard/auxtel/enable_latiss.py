"""auxtel/enable_latiss.py: enable LATISS (ATCamera, ATSpectrograph)."""

from __future__ import annotations

from obsq.scripts.enable import EnableGroup


class EnableLATISS(EnableGroup):
    description = "Enable ATCamera and ATSpectrograph, each with an optional configuration override."
    components = ("ATCamera", "ATSpectrograph")
