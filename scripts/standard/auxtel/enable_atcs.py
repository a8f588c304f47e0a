"""auxtel/enable_atcs.py: enable the auxiliary telescope control system, configured as Rubin's EnableATTCS."""

from __future__ import annotations

from typing import ClassVar

from obsq.scripts.enable import EnableGroup


class EnableATCS(EnableGroup):
    description = "Enable the ATCS (here ATMCS and ATDome; the others Rubin's group has are named and skipped)."
    group = ("atmcs", "atptg", "ataos", "atpneumatics", "athexapod", "atdome", "atdometrajectory")
    configurable = ("ataos", "athexapod", "atdome", "atdometrajectory")
    present: ClassVar[dict[str, str]] = {"atmcs": "ATMCS", "atdome": "ATDome"}
