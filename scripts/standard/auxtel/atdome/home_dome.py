"""atdome/home_dome.py: home the dome (it ends at azimuth 0, its encoder reset)."""

from __future__ import annotations

from typing import Any

from obsq.scripts.base import BaseScript


class HomeDome(BaseScript):
    description = "Home the dome: rotate to the home switch and reset the encoder (fixes encoder drift)."

    async def configure(self, config: dict[str, Any]) -> None:
        self.dome = self.remote("ATDome")

    def set_metadata(self, metadata: dict[str, Any]) -> None:
        metadata["duration"] = 100.0

    async def run_script(self) -> None:
        await self.start_remotes()
        await self.assert_enabled(self.dome)
        await self.checkpoint("Homing the dome")
        await self.dome.command("homeAzimuth", timeout_s=300)
