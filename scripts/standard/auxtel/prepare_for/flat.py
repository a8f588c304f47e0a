"""prepare_for/flat.py: Rubin's prepare_for_flatfield: home, close the dome, point telescope and dome at the screen."""

from __future__ import annotations

from typing import Any

from obsq.scripts.base import BaseScript
from obsq.scripts.dome import Dome

FLAT_MOUNT_AZIMUTH, FLAT_MOUNT_ELEVATION, FLAT_DOME_AZIMUTH = 188.7, 39.0, 3.0


class PrepareForFlat(BaseScript):
    description = (
        "Home the dome (unless homed) and close its shutter, point the telescope to the flat position"
        " (az 188.7, el 39.0) and the dome to az 3.0."
    )

    async def configure(self, config: dict[str, Any]) -> None:
        self.dome = Dome(self)
        self.mount = self.remote("ATMCS")

    def set_metadata(self, metadata: dict[str, Any]) -> None:
        metadata["duration"] = 600.0

    async def run_script(self) -> None:
        await self.start_remotes()
        await self.assert_enabled(self.dome.remote, self.mount)
        await self.checkpoint("Homing the dome")
        await self.dome.home()
        await self.checkpoint("Closing the dome shutter")
        await self.dome.close()
        await self.checkpoint("Pointing the telescope to the flat position")
        await self.mount.command("stopTracking", timeout_s=30)
        await self.mount.command(
            "moveToPosition", {"azimuth": FLAT_MOUNT_AZIMUTH, "elevation": FLAT_MOUNT_ELEVATION}, timeout_s=300
        )
        await self.checkpoint("Moving the dome to the flat position")
        await self.dome.remote.command("moveAzimuth", {"azimuth": FLAT_DOME_AZIMUTH}, timeout_s=300)
