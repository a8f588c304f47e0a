"""stop_tracking.py: stop the mount tracking."""

from __future__ import annotations

from typing import Any

from obsq.scripts.base import BaseScript


class StopTracking(BaseScript):
    description = "Stop the auxiliary telescope mount tracking."

    async def configure(self, config: dict[str, Any]) -> None:
        self.mount = self.remote("ATMCS")

    async def run_script(self) -> None:
        await self.start_remotes()
        await self.assert_enabled(self.mount)
        await self.checkpoint("Stop tracking")
        await self.mount.command("stopTracking", timeout_s=30)
