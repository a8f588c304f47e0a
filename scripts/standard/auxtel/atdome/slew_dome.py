"""atdome/slew_dome.py: move the dome to an azimuth."""

from __future__ import annotations

from typing import Any

from obsq.scripts.base import BaseScript


class SlewDome(BaseScript):
    description = "Move the dome to the given azimuth (deg)."

    @classmethod
    def get_schema(cls) -> dict[str, Any]:
        return {
            "title": "SlewDome v1",
            "type": "object",
            "additionalProperties": False,
            "required": ["az"],
            "properties": {"az": {"type": "number", "minimum": 0, "exclusiveMaximum": 360, "description": "deg"}},
        }

    async def configure(self, config: dict[str, Any]) -> None:
        self.dome = self.remote("ATDome")

    async def run_script(self) -> None:
        await self.start_remotes()
        await self.assert_enabled(self.dome)
        await self.checkpoint(f"Moving the dome to {self.config['az']:g} deg")
        await self.dome.command("moveAzimuth", {"azimuth": self.config["az"]}, timeout_s=300)
