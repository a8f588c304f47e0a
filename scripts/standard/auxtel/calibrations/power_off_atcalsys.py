"""power_off_atcalsys.py: lamp off, shutter closed, wait for the cool-down, chiller off."""

from __future__ import annotations

from typing import Any

from obsq.csc.core.errors import ExpectedError
from obsq.scripts.base import BaseScript

LAMP_OFF = 1
TIMEOUT_LAMP_COOL_DOWN_S = 1200.0


class PowerOffATCalSys(BaseScript):
    description = "Turn the white light off, close its shutter, wait for the cool-down, stop the chiller."

    async def configure(self, config: dict[str, Any]) -> None:
        self.lamp = self.remote("ATWhiteLight")

    def set_metadata(self, metadata: dict[str, Any]) -> None:
        metadata["duration"] = TIMEOUT_LAMP_COOL_DOWN_S

    async def run_script(self) -> None:
        await self.start_remotes()
        await self.assert_enabled(self.lamp)
        await self.checkpoint("Turning lamp off")
        await self.lamp.command("turnLampOff", {"force": False}, timeout_s=30)
        await self.checkpoint("Closing the shutter")
        await self.lamp.command("closeShutter", timeout_s=120)
        await self.checkpoint("Waiting for lamp to cool down")
        state = self.lamp.event("lampState")
        start = self.clock.monotonic()
        while state.get().get("basicState") != LAMP_OFF:
            remaining = TIMEOUT_LAMP_COOL_DOWN_S - (self.clock.monotonic() - start)
            try:
                await state.next(flush=False, timeout_s=max(0.0, remaining))
            except TimeoutError:
                raise ExpectedError(f"the lamp did not cool down within {TIMEOUT_LAMP_COOL_DOWN_S:g} s") from None
        await self.checkpoint("Stopping chiller")
        await self.lamp.command("stopChiller", timeout_s=30)
