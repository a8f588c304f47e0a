"""The dome on an INDI dome driver (issue 24): INDI's standard ABS_DOME_POSITION, DOME_SHUTTER, DOME_ABORT_MOTION.

A move is a newNumberVector ABS_DOME_POSITION; the driver answers Busy while the dome turns,
then Ok at the azimuth, or Alert with a message saying why. The shutter (DOME_SHUTTER, if the
dome has one) is obsq's main door; INDI has no dropout door, which the service refuses by name.
A halt is DOME_ABORT_MOTION. Homing is DOME_GOTO's DOME_HOME where the driver has it; a dome
without it keeps its own azimuth and counts as homed. INDI devices run in real time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from obsq.csc.atdome.model import MAIN, DomeModel, ShutterModel
from obsq.csc.core.errors import DeviceError, DeviceTimeoutError
from obsq.csc.indi.client import IndiConnection, Request, alert
from obsq.csc.indi.protocol import Vector

POSITION, AZIMUTH = "ABS_DOME_POSITION", "DOME_ABSOLUTE_POSITION"
SHUTTER, ABORT, GOTO = "DOME_SHUTTER", "DOME_ABORT_MOTION", "DOME_GOTO"
#: Real seconds for a device to define its properties and to connect.
CONNECT_WAIT_S = 15.0
#: Real seconds for a halted dome to say it stopped.
ABORT_WAIT_S = 10.0


class IndiDome:
    """One INDI dome as the ATDome service's DomeDriver."""

    def __init__(self, connection: IndiConnection, device: str) -> None:
        self.link = connection
        self.name_on_server = device
        self.device = f"{connection.where}/{device}"
        self.doors: tuple[str, ...] = ()
        self.can_home = False
        #: The configured speeds (estimates for timeouts); the azimuth is the device's.
        self.model = DomeModel(drift_per_degree=0.0)
        self._shutter = ShutterModel()
        self._homed = False

    # -- readings ---------------------------------------------------------------------------

    def _vector(self, name: str) -> Vector:
        vector = self.link.vector(self.name_on_server, name)
        if vector is None:
            raise DeviceError(f"{self.device}: the device has no {name} (disconnected?)")
        return vector

    @property
    def azimuth_deg(self) -> float:
        vector = self.link.vector(self.name_on_server, POSITION)
        if vector is not None and AZIMUTH in vector.values:
            with contextlib.suppress(ValueError):  # a broken value: the last azimuth read stands
                self.model.encoder_deg = vector.number(AZIMUTH) % 360.0
        return self.model.encoder_deg

    @property
    def homed(self) -> bool:
        return self._homed

    @property
    def true_azimuth_deg(self) -> float | None:
        return None  # only a simulation knows where a dome really points

    @property
    def shutter(self) -> ShutterModel:
        self._shutter.main.percent = self.door_percent(MAIN)
        return self._shutter

    def door_percent(self, door: str) -> float:
        vector = self.link.vector(self.name_on_server, SHUTTER)
        if door != MAIN or vector is None:
            return 0.0
        if vector.state == "Busy":
            return 50.0
        return 100.0 if vector.values.get("SHUTTER_OPEN") == "On" else 0.0

    def move_time(self, azimuth_deg: float) -> float:
        self.model.encoder_deg = self.azimuth_deg
        return self.model.move_time(azimuth_deg)

    def home_time(self) -> float:
        return self.model.home_time()

    # -- set-up -----------------------------------------------------------------------------

    async def configure(
        self, speed_deg_s: float, settle_s: float, drift_per_degree: float, main_door_s: float, dropout_door_s: float
    ) -> None:
        self.model.speed_deg_s, self.model.settle_s = speed_deg_s, settle_s
        self._shutter.main.travel_s = main_door_s
        await self.link.connect_device(self.name_on_server, CONNECT_WAIT_S, POSITION)
        self.doors = (MAIN,) if self.link.vector(self.name_on_server, SHUTTER) is not None else ()
        goto = self.link.vector(self.name_on_server, GOTO)
        self.can_home = goto is not None and "DOME_HOME" in goto.values
        self._homed = not self.can_home

    async def close(self) -> None:
        await self.link.close()

    # -- motions ----------------------------------------------------------------------------

    async def move(self, azimuth_deg: float, halt: asyncio.Event, timeout_s: float) -> None:
        request: Request = (POSITION, "Number", {AZIMUTH: azimuth_deg % 360.0})
        await self._run(request, halt, timeout_s, f"the move to {azimuth_deg:g} deg")

    async def home(self, halt: asyncio.Event, timeout_s: float) -> None:
        request: Request = (GOTO, "Switch", {"DOME_HOME": True})
        if await self._run(request, halt, timeout_s, "homing"):
            self._homed = True

    async def move_door(self, door: str, open_: bool, halt: asyncio.Event, timeout_s: float) -> None:
        request: Request = (SHUTTER, "Switch", {"SHUTTER_OPEN": open_, "SHUTTER_CLOSE": not open_})
        await self._run(request, halt, timeout_s, f"{'opening' if open_ else 'closing'} the shutter")

    async def _run(self, request: Request, halt: asyncio.Event, timeout_s: float, what: str) -> bool:
        """Send (property, type, values) and wait while the property is Busy: True if it ended Ok, False if halted."""
        name, type_, values = request
        vector = self._vector(name)
        vector.state = "Busy"  # until the driver answers this request (its answer sets the state)
        await self.link.send(self.name_on_server, name, type_, values)
        try:
            await self.link.wait_until(_ended(vector, halt), timeout_s, what)
        except DeviceTimeoutError:
            await self._abort()
            raise
        if vector.state == "Alert":
            raise alert(self.link, vector, what)
        if halt.is_set() and vector.state == "Busy":
            await self._abort()
            return False
        return not halt.is_set()

    async def _abort(self) -> None:
        await self.link.send(self.name_on_server, ABORT, "Switch", {"ABORT": True})
        position = self._vector(POSITION)
        await self.link.wait_until(lambda: position.state != "Busy", ABORT_WAIT_S, "the dome to stop")


def _ended(vector: Vector, halt: asyncio.Event) -> Callable[[], bool]:
    return lambda: vector.state != "Busy" or halt.is_set()
