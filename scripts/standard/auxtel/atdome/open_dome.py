"""atdome/open_dome.py: open the main shutter door (Rubin's open_dome)."""

from __future__ import annotations

from typing import Any

from obsq.scripts.base import BaseScript
from obsq.scripts.dome import Dome


class OpenDome(BaseScript):
    description = "Open the main dome shutter door."

    async def configure(self, config: dict[str, Any]) -> None:
        self.dome = Dome(self)

    def set_metadata(self, metadata: dict[str, Any]) -> None:
        metadata["duration"] = 240.0

    async def run_script(self) -> None:
        await self.start_remotes()
        await self.assert_enabled(self.dome.remote)
        await self.checkpoint("Opening the main shutter door")
        await self.dome.open_main_door()
