"""atdome/open_dropout_door.py: open the dropout door (the main door must be open)."""

from __future__ import annotations

from typing import Any

from obsq.scripts.base import BaseScript
from obsq.scripts.dome import Dome


class OpenDropoutDoor(BaseScript):
    description = "Open the dome's dropout door (the main door must be fully open)."

    async def configure(self, config: dict[str, Any]) -> None:
        self.dome = Dome(self)

    def set_metadata(self, metadata: dict[str, Any]) -> None:
        metadata["duration"] = 240.0

    async def run_script(self) -> None:
        await self.start_remotes()
        await self.assert_enabled(self.dome.remote)
        await self.checkpoint("Opening the dropout door")
        await self.dome.move_dropout_door(True)
