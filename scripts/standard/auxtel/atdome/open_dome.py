"""atdome/open_dome.py: open the main shutter door (Rubin's open_dome)."""

from __future__ import annotations

from obsq.scripts.dome import DomeShutterScript


class OpenDome(DomeShutterScript):
    description = "Open the main dome shutter door."
    checkpoint_text = "Opening the main shutter door"

    async def move(self) -> None:
        await self.dome.open_main_door()
