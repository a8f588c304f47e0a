"""power_on_atcalsys.py: chiller on and at temperature, shutter open, lamp on and warm (PowerOnATCalSys v1)."""

from __future__ import annotations

from typing import Any

from obsq.csc.core.errors import ExpectedError
from obsq.scripts.base import BaseScript

LAMP_ON = 2
TIMEOUT_LAMP_WARM_UP_S = 1200.0
TIMEOUT_CHILLER_COOL_DOWN_S = 900.0
CHILLER_TOLERANCE_RELATIVE = 0.2


class PowerOnATCalSys(BaseScript):
    description = "Start the chiller, open the shutter, turn the white light on and wait for its warm-up."

    @classmethod
    def get_schema(cls) -> dict[str, Any]:
        return {
            "title": "PowerOnATCalSys v1",
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "chiller_temperature": {"type": "number", "minimum": 10, "default": 20, "description": "deg C"},
                "whitelight_power": {"type": "number", "minimum": 0, "default": 910, "description": "W"},
                "wavelength": {"type": "number", "minimum": 0, "default": 0, "description": "nm; 0 = white light"},
                "grating_type": {
                    "type": "integer",
                    "enum": [0, 1, 2],
                    "default": 0,
                    "description": "monochromator grating (Rubin's; used only with the monochromator)",
                },
                "entrance_slit_width": {
                    "type": "number",
                    "default": 5,
                    "description": "monochromator entrance slit (mm; with the monochromator)",
                },
                "exit_slit_width": {
                    "type": "number",
                    "default": 5,
                    "description": "monochromator exit slit (mm; with the monochromator)",
                },
                "use_atmonochromator": {
                    "type": "boolean",
                    "default": False,
                    "description": "set up the ATMonochromator too (refused: this site has none)",
                },
            },
        }

    async def configure(self, config: dict[str, Any]) -> None:
        if config["use_atmonochromator"]:
            raise ExpectedError("use_atmonochromator: this site has no ATMonochromator")
        self.lamp = self.remote("ATWhiteLight", telemetry=True)

    def set_metadata(self, metadata: dict[str, Any]) -> None:
        metadata["duration"] = TIMEOUT_CHILLER_COOL_DOWN_S + TIMEOUT_LAMP_WARM_UP_S

    async def run_script(self) -> None:
        await self.start_remotes()
        await self.assert_enabled(self.lamp)
        set_point = self.config["chiller_temperature"]
        await self.checkpoint("Starting chiller")
        await self.lamp.command("setChillerTemperature", {"temperature": set_point}, timeout_s=30)
        await self.lamp.command("startChiller", timeout_s=30)
        await self.checkpoint("Waiting for chiller to cool to set temperature")
        await self._wait_chiller(set_point)
        await self.checkpoint("Opening the shutter")
        await self.lamp.command("openShutter", timeout_s=180)
        await self.checkpoint("Turning on lamp")
        await self.lamp.command(
            "turnLampOn", {"power": self.config["whitelight_power"]}, timeout_s=TIMEOUT_LAMP_WARM_UP_S
        )
        await self.checkpoint("Waiting for lamp to warm up")
        await self._wait_lamp_on()

    async def _wait_chiller(self, set_point: float) -> None:
        start = self.clock.monotonic()
        temperatures = self.lamp.telemetry("chillerTemperatures")
        while self.clock.monotonic() - start < TIMEOUT_CHILLER_COOL_DOWN_S:
            try:
                sample = await temperatures.next(flush=True, timeout_s=TIMEOUT_CHILLER_COOL_DOWN_S)
            except TimeoutError:
                break
            if (
                abs(sample["setTemperature"] - sample["supplyTemperature"]) / sample["setTemperature"]
                <= CHILLER_TOLERANCE_RELATIVE
            ):
                return
        raise ExpectedError(f"the chiller did not reach {set_point:g} C within {TIMEOUT_CHILLER_COOL_DOWN_S:g} s")

    async def _wait_lamp_on(self) -> None:
        state = self.lamp.event("lampState")
        start = self.clock.monotonic()
        while state.get().get("basicState") != LAMP_ON:
            remaining = TIMEOUT_LAMP_WARM_UP_S - (self.clock.monotonic() - start)
            try:
                await state.next(flush=False, timeout_s=max(0.0, remaining))
            except TimeoutError:
                raise ExpectedError(f"the lamp was not warm within {TIMEOUT_LAMP_WARM_UP_S:g} s") from None
