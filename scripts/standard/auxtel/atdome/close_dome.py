"""atdome/close_dome.py: close the dome shutter (Rubin's close_dome)."""

from __future__ import annotations

from obsq.scripts.dome import DomeShutterScript


class CloseDome(DomeShutterScript):
    description = "Close the dome shutter: the dropout door, then the main door."
    checkpoint_text = "Closing the dome shutter"

    async def move(self) -> None:
        await self.dome.close()
