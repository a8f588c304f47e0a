"""atdome/open_dropout_door.py: open the dropout door (the main door must be open)."""

from __future__ import annotations

from obsq.scripts.dome import DomeShutterScript


class OpenDropoutDoor(DomeShutterScript):
    description = "Open the dome's dropout door (the main door must be fully open)."
    checkpoint_text = "Opening the dropout door"

    async def move(self) -> None:
        await self.dome.move_dropout_door(True)
