"""auxtel/enable_atcs.py: enable the auxiliary telescope control system (ATMCS, ATDome)."""

from __future__ import annotations

from obsq.scripts.enable import EnableGroup


class EnableATCS(EnableGroup):
    description = "Enable ATMCS and ATDome, each with an optional configuration override."
    components = ("ATMCS", "ATDome")
