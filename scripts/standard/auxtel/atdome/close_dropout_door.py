"""atdome/close_dropout_door.py: close the dropout door."""

from __future__ import annotations

from obsq.scripts.dome import DomeShutterScript


class CloseDropoutDoor(DomeShutterScript):
    description = "Close the dome's dropout door."
    checkpoint_text = "Closing the dropout door"

    async def move(self) -> None:
        await self.dome.move_dropout_door(False)
