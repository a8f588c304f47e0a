"""The white-light lamp on an INDI light panel (issue 24): INDI's FLAT_LIGHT_CONTROL and FLAT_LIGHT_INTENSITY.

The lamp is the panel: `power_on` sets the intensity the power asks for (power / the largest
power × the intensity's maximum, as the device defines it) and switches FLAT_LIGHT_ON; light is
FLAT_LIGHT_ON answered Ok. An INDI light panel has neither a shutter nor a chiller: the lamp's
shutter commands are refused naming it (not a fault), and the rules do without a chiller. INDI
devices run in real time.
"""

from __future__ import annotations

from obsq.csc.atwhitelight.model import LampReading, ShutterState
from obsq.csc.core.errors import DeviceError, DeviceTimeoutError, ExpectedError
from obsq.csc.indi.client import IndiConnection, alert
from obsq.csc.indi.protocol import Vector

CONTROL, INTENSITY, VALUE = "FLAT_LIGHT_CONTROL", "FLAT_LIGHT_INTENSITY", "FLAT_LIGHT_INTENSITY_VALUE"
#: Real seconds for a device to define its properties and to connect.
CONNECT_WAIT_S = 15.0
#: The intensity scale where the device does not give its maximum.
DEFAULT_MAX_INTENSITY = 255.0


class IndiLamp:
    """One INDI light panel as ATWhiteLight's WhiteLightDriver."""

    has_chiller = False

    def __init__(self, connection: IndiConnection, device: str) -> None:
        self.link = connection
        self.name_on_server = device
        self.device = f"{connection.where}/{device}"
        self._max_intensity = DEFAULT_MAX_INTENSITY

    def _vector(self, name: str) -> Vector:
        vector = self.link.vector(self.name_on_server, name)
        if vector is None:
            raise DeviceError(f"{self.device}: the device has no {name} (disconnected?)")
        return vector

    async def connect(self) -> None:
        await self.link.connect_device(self.name_on_server, CONNECT_WAIT_S, CONTROL, INTENSITY)
        maximum = self._vector(INTENSITY).attributes.get(VALUE, {}).get("max", "")
        try:
            self._max_intensity = float(maximum) if float(maximum) > 0 else DEFAULT_MAX_INTENSITY
        except ValueError:
            self._max_intensity = DEFAULT_MAX_INTENSITY

    async def disconnect(self) -> None:
        """The panel stays connected on its server (other clients may use it); nothing to do."""

    async def close(self) -> None:
        await self.link.close()

    def _lit(self) -> bool:
        control = self._vector(CONTROL)
        return control.values.get("FLAT_LIGHT_ON") == "On" and control.state != "Alert"

    async def read(self) -> LampReading:
        return LampReading(light=self._lit(), shutter=ShutterState.INVALID, chiller=None)

    async def _chiller(self) -> None:
        raise ExpectedError(f"the lamp {self.device} has no chiller")

    async def start_chiller(self) -> None:
        await self._chiller()

    async def stop_chiller(self) -> None:
        await self._chiller()

    async def set_temperature(self, temperature_c: float) -> None:
        await self._chiller()

    async def power_on(self, power_w: float, max_power_w: float) -> None:
        intensity = max(1.0, min(self._max_intensity, round(self._max_intensity * power_w / max_power_w)))
        await self.link.request(self.name_on_server, (INTENSITY, "Number", {VALUE: intensity}), CONNECT_WAIT_S,
                                "setting the intensity")  # fmt: skip
        await self.link.send(self.name_on_server, CONTROL, "Switch", {"FLAT_LIGHT_ON": True, "FLAT_LIGHT_OFF": False})

    async def wait_light(self, timeout_s: float) -> bool:
        return await self._until(True, timeout_s)

    async def power_off(self) -> None:
        await self.link.send(self.name_on_server, CONTROL, "Switch", {"FLAT_LIGHT_ON": False, "FLAT_LIGHT_OFF": True})

    async def wait_dark(self, timeout_s: float) -> bool:
        return await self._until(False, timeout_s)

    async def _until(self, lit: bool, timeout_s: float) -> bool:
        control = self._vector(CONTROL)
        try:
            await self.link.wait_until(lambda: self._lit() == lit or control.state == "Alert", timeout_s,
                                       f"the panel to turn {'on' if lit else 'off'}")  # fmt: skip
        except DeviceTimeoutError:
            return False
        if control.state == "Alert":
            raise alert(self.link, control, f"turning the panel {'on' if lit else 'off'}")
        return True

    async def move_shutter(self, open_: bool) -> None:
        raise ExpectedError(f"the lamp {self.device} has no shutter (an INDI light panel)")

    async def wait_shutter(self, open_: bool, timeout_s: float) -> None:
        raise ExpectedError(f"the lamp {self.device} has no shutter (an INDI light panel)")
