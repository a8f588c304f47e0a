"""atdome/close_dropout_door.py: close the dropout door."""

from __future__ import annotations

from typing import Any

from obsq.scripts.base import BaseScript
from obsq.scripts.dome import Dome


class CloseDropoutDoor(BaseScript):
    description = "Close the dome's dropout door."

    async def configure(self, config: dict[str, Any]) -> None:
        self.dome = Dome(self)

    def set_metadata(self, metadata: dict[str, Any]) -> None:
        metadata["duration"] = 240.0

    async def run_script(self) -> None:
        await self.start_remotes()
        await self.assert_enabled(self.dome.remote)
        await self.checkpoint("Closing the dropout door")
        await self.dome.move_dropout_door(False)
