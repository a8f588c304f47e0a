"""obsq's simulated observatory as ASCOM Alpaca devices: the models behind the protocol (issue 24).

One `ServedSite` holds the hardware models obsq simulates — the detector, the lamp with its chiller
and shutter, the two wheels, the dome, the mount — on one scaled clock, and serves each as the
Alpaca device a real site would have: Camera, CoverCalibrator (the lamp, its cover the shutter),
Switch (the chiller's power, supply temperature and coolant flow), FilterWheel 0 and 1 (filters,
dispersers), Dome (one shutter: the main door) and Telescope. The camera's light is the
simulation's physics from the served devices themselves: the lamp's brightness and warm-up, its
cover, the filter and disperser in the beam, where the dome really points (its encoder drift
included) and where the mount is — so flats, darks, gain and read noise are what obsq's own
verification and PTC can recover, and a fault injected here is seen only through the protocol.

Each device answers `get(member, params)` and `put(member, form)` with a value or raises
`ServedError` (an ASCOM error number and message); app.py puts them on HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import inspect
import math
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from obsq.csc import __version__
from obsq.csc.atcamera.illumination import SHUTTER_OPEN, ObservatoryState, flat_flux_e_s
from obsq.csc.atcamera.model import DetectorModel, Geometry
from obsq.csc.atdome.model import MAIN
from obsq.csc.atdome.sim import SimDome
from obsq.csc.atmcs.model import MountModel
from obsq.csc.atspectrograph.model import Wheel
from obsq.csc.atwhitelight.model import ShutterState
from obsq.csc.atwhitelight.sim import SimWhiteLight
from obsq.csc.clock import Clock
from obsq.csc.core.errors import ExpectedError
from obsq.csc.served.faults import SERVED_INJECTIONS

#: ASCOM error numbers.
NOT_IMPLEMENTED, INVALID_VALUE, VALUE_NOT_SET, NOT_CONNECTED, INVALID_OPERATION = 0x400, 0x401, 0x402, 0x407, 0x40B
#: The served camera: one amplifier of obsq's detector model, read as one image (no overscan), as a real camera.
GEOMETRY = Geometry("served", rows=1, cols=1, nx=512, ny=512, serial_overscan=8, parallel_overscan=0)
#: The lamp's largest power (W): CalibratorOn(MaxBrightness) strikes it at this power.
LAMP_MAX_POWER_W = 1200.0
MAX_BRIGHTNESS = 255
#: The served lamp's warm-up (s): its light ramps up over it, as the simulated camera has it.
LAMP_WARMUP_S = 900.0
#: Seconds of clock time a readout takes.
READOUT_S = 2.0
FILTERS = ["empty_1", "SDSSr_65mm", "SDSSg_65mm", "SDSSz_65mm", "BG40_65mm_1", "OG550_65mm_1"]
DISPERSERS = ["empty_1", "SDSSy_65mm", "holo4_003", "ronchi170lpmm", "blue300lpmm_qn1"]


class ServedError(Exception):
    """An ASCOM error a served device answers with: its number and message."""

    def __init__(self, number: int, message: str) -> None:
        super().__init__(message)
        self.number = number
        self.message = message


def number(form: Mapping[str, str], name: str) -> float:
    text = _field(form, name)
    try:
        value = float(text)
    except ValueError:
        raise ServedError(INVALID_VALUE, f"{name} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ServedError(INVALID_VALUE, f"{name} must be finite, got {text!r}")
    return value


def integer(form: Mapping[str, str], name: str) -> int:
    text = _field(form, name)
    try:
        return int(text)
    except ValueError:
        raise ServedError(INVALID_VALUE, f"{name} {text!r} is not an integer") from None


def boolean(form: Mapping[str, str], name: str) -> bool:
    text = _field(form, name).strip().lower()
    if text not in ("true", "false"):
        raise ServedError(INVALID_VALUE, f"{name} {text!r} is not True or False")
    return text == "true"


def _field(form: Mapping[str, str], name: str) -> str:
    for key, value in form.items():  # Alpaca's parameter names are matched without regard to case
        if key.lower() == name.lower():
            return value
    raise ServedError(INVALID_VALUE, f"the parameter {name} is missing")


class ServedDevice:
    """One Alpaca device: the common members, and dispatch to `get_<member>` / `put_<member>`."""

    device_type = ""
    description = ""
    interface_version = 1

    def __init__(self, site: ServedSite, number: int = 0) -> None:
        self.site = site
        self.number = number
        self.connected = False

    @property
    def name(self) -> str:
        return f"obsq simulated {self.device_type} {self.number}"

    def get(self, member: str, params: Mapping[str, str]) -> Any:
        common = {"connected": self.connected, "name": self.name, "description": self.description,
                  "driverinfo": f"obsq {__version__}: the simulated observatory's models",
                  "driverversion": __version__, "interfaceversion": self.interface_version,
                  "supportedactions": [], "connecting": False}  # fmt: skip
        if member in common:
            return common[member]
        handler = getattr(self, f"get_{member}", None)
        if handler is None:
            raise ServedError(NOT_IMPLEMENTED, f"{self.device_type} {member} is not implemented")
        self._check_connected(member)
        return handler(params) if _takes_arguments(handler) else handler()

    def put(self, member: str, form: Mapping[str, str]) -> Any:
        if member == "connected":
            self.connected = boolean(form, "Connected")
            return None
        if member in ("connect", "disconnect"):
            self.connected = member == "connect"
            return None
        handler = getattr(self, f"put_{member}", None)
        if handler is None:
            raise ServedError(NOT_IMPLEMENTED, f"{self.device_type} {member} is not implemented")
        self._check_connected(member)
        return handler(form)

    def _check_connected(self, member: str) -> None:
        if not self.connected:
            raise ServedError(NOT_CONNECTED, f"{self.device_type} {self.number} is not connected ({member})")


def _takes_arguments(handler: Callable[..., Any]) -> bool:
    return len(inspect.signature(handler).parameters) > 0


class _Task:
    """A motion or exposure under way on the site's loop, which a halt stops."""

    def __init__(self) -> None:
        self.task: asyncio.Task[None] | None = None
        self.halt = asyncio.Event()

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    def start(self, work: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> None:
        self.stop()
        self.halt = asyncio.Event()
        self.task = asyncio.get_running_loop().create_task(work(self.halt))

    def stop(self) -> None:
        self.halt.set()


# -- the devices -----------------------------------------------------------------------------------


class ServedCamera(ServedDevice):
    """The detector model as an Alpaca Camera: StartExposure, CameraState, ImageReady, the image."""

    device_type = "camera"
    description = "obsq's detector model (one amplifier, ITL-like), its light from the served lamp, wheels, dome, mount"
    interface_version = 3
    IDLE, WAITING, EXPOSING, READING, DOWNLOAD, ERROR = range(6)

    def __init__(self, site: ServedSite) -> None:
        super().__init__(site)
        self.detector = DetectorModel(GEOMETRY, seed=24)
        self.state = self.IDLE
        self.image: npt.NDArray[np.int32] | None = None
        self.exposures = 0
        self.failing_readouts = 0
        self.last_duration = 0.0
        self.last_start = ""
        self.frame = {"startx": 0, "starty": 0, "numx": GEOMETRY.nx, "numy": GEOMETRY.ny}
        self._stopped = False
        self._work = _Task()

    def get_cameraxsize(self) -> int:
        return GEOMETRY.nx

    def get_cameraysize(self) -> int:
        return GEOMETRY.ny

    def get_camerastate(self) -> int:
        return self.state

    def get_imageready(self) -> bool:
        return self.image is not None and self.state == self.IDLE

    def get_exposuremin(self) -> float:
        return 0.0

    def get_exposureresolution(self) -> float:
        return 0.001

    def get_fullwellcapacity(self) -> float:
        return round(self.detector.amplifiers[0].full_well_e, 1)

    def get_hasshutter(self) -> bool:
        return True

    def get_sensortype(self) -> int:
        return 0  # monochrome

    def get_maxbinx(self) -> int:
        return 1

    def get_maxbiny(self) -> int:
        return 1

    def get_canabortexposure(self) -> bool:
        return True

    def get_canstopexposure(self) -> bool:
        return True

    def get_canasymmetricbin(self) -> bool:
        return False

    def get_canfastreadout(self) -> bool:
        return False

    def get_cangetcoolerpower(self) -> bool:
        return False

    def get_canpulseguide(self) -> bool:
        return False

    def get_cansetccdtemperature(self) -> bool:
        return False

    def get_startx(self) -> int:
        return self.frame["startx"]

    def get_starty(self) -> int:
        return self.frame["starty"]

    def get_numx(self) -> int:
        return self.frame["numx"]

    def get_numy(self) -> int:
        return self.frame["numy"]

    def put_startx(self, form: Mapping[str, str]) -> None:
        self._set_frame("startx", integer(form, "StartX"), GEOMETRY.nx - 1)

    def put_starty(self, form: Mapping[str, str]) -> None:
        self._set_frame("starty", integer(form, "StartY"), GEOMETRY.ny - 1)

    def put_numx(self, form: Mapping[str, str]) -> None:
        self._set_frame("numx", integer(form, "NumX"), GEOMETRY.nx)

    def put_numy(self, form: Mapping[str, str]) -> None:
        self._set_frame("numy", integer(form, "NumY"), GEOMETRY.ny)

    def _set_frame(self, member: str, value: int, largest: int) -> None:
        low = 1 if member.startswith("num") else 0
        if not low <= value <= largest:
            raise ServedError(INVALID_VALUE, f"{member} {value} is outside {low} to {largest}")
        self.frame[member] = value

    def put_binx(self, form: Mapping[str, str]) -> None:
        if integer(form, "BinX") != 1:
            raise ServedError(INVALID_VALUE, "BinX must be 1 (MaxBinX is 1)")

    def put_biny(self, form: Mapping[str, str]) -> None:
        if integer(form, "BinY") != 1:
            raise ServedError(INVALID_VALUE, "BinY must be 1 (MaxBinY is 1)")

    def get_exposuremax(self) -> float:
        return 3600.0

    def get_readoutmodes(self) -> list[str]:
        return ["Normal"]

    def get_readoutmode(self) -> int:
        return 0

    def get_ccdtemperature(self) -> float:
        return -95.0

    def get_setccdtemperature(self) -> float:
        return -95.0

    def get_electronsperadu(self) -> float:
        return round(self.detector.amplifiers[0].gain_e_per_adu, 4)

    def get_maxadu(self) -> int:
        return (1 << 18) - 1

    def get_binx(self) -> int:
        return 1

    def get_biny(self) -> int:
        return 1

    def get_pixelsizex(self) -> float:
        return 10.0

    def get_pixelsizey(self) -> float:
        return 10.0

    def get_sensorname(self) -> str:
        return "obsq ITL-like (simulated)"

    def get_lastexposureduration(self) -> float:
        if not self.last_start:
            raise ServedError(VALUE_NOT_SET, "no exposure has been taken")
        return self.last_duration

    def get_lastexposurestarttime(self) -> str:
        if not self.last_start:
            raise ServedError(VALUE_NOT_SET, "no exposure has been taken")
        return self.last_start

    def image_array(self) -> npt.NDArray[np.int32]:
        if self.image is None or self.state != self.IDLE:
            raise ServedError(INVALID_OPERATION, "no image is ready")
        return self.image

    def put_startexposure(self, form: Mapping[str, str]) -> None:
        duration, light = number(form, "Duration"), boolean(form, "Light")
        if not 0.0 <= duration <= 3600.0:
            raise ServedError(INVALID_VALUE, f"Duration {duration:g} s is outside 0 to 3600 s")
        if self.state not in (self.IDLE, self.ERROR):
            raise ServedError(INVALID_OPERATION, f"the camera is not idle (CameraState {self.state})")
        x0, y0, nx, ny = (self.frame[k] for k in ("startx", "starty", "numx", "numy"))
        if x0 + nx > GEOMETRY.nx or y0 + ny > GEOMETRY.ny:
            raise ServedError(INVALID_VALUE, f"the subframe StartX {x0} NumX {nx}, StartY {y0} NumY {ny} is off the"
                                             f" {GEOMETRY.nx}x{GEOMETRY.ny} sensor")  # fmt: skip
        self.image, self.state = None, self.EXPOSING
        self.exposures += 1
        self.last_duration = duration
        self.last_start = self.site.utc_iso()
        start = self.site.snapshot()
        self._work.start(lambda halt: self._expose(self.exposures, duration, light, start, halt))

    def put_abortexposure(self, form: Mapping[str, str]) -> None:
        self._stopped = False
        self._work.stop()

    def put_stopexposure(self, form: Mapping[str, str]) -> None:
        self._stopped = True  # ends the exposure now and reads it out
        self._work.stop()

    async def _expose(self, exposure: int, duration: float, light: bool, start: ObservatoryState,
                      halt: asyncio.Event) -> None:  # fmt: skip
        clock = self.site.clock
        t0 = clock.monotonic()
        self._stopped = False
        with contextlib.suppress(TimeoutError):
            await clock.wait_for(halt.wait(), duration)
            if not self._stopped:
                self.state = self.IDLE  # aborted: no image
                return
            duration = self.last_duration = clock.monotonic() - t0  # stopped: read out what was exposed
        self.state = self.READING
        await clock.sleep(READOUT_S)
        if self.failing_readouts > 0:
            self.failing_readouts -= 1
            self.state = self.ERROR
            return
        flux = flat_flux_e_s(start, LAMP_WARMUP_S) if light else 0.0
        darktime = clock.monotonic() - t0
        raws = await clock.to_thread(self.detector.expose, exposure, flux, duration, darktime)
        x0, y0, nx, ny = (self.frame[k] for k in ("startx", "starty", "numx", "numy"))
        self.image = raws[0][y0 : y0 + ny, x0 : x0 + nx].copy()
        self.state = self.IDLE


class ServedCalibrator(ServedDevice):
    """The white-light lamp as an Alpaca CoverCalibrator: the calibrator is the lamp, the cover its shutter."""

    device_type = "covercalibrator"
    description = "obsq's white-light lamp: light after its strike, a warm-up, a shutter (the cover)"

    def __init__(self, site: ServedSite) -> None:
        super().__init__(site)
        self.brightness = 0

    @property
    def lamp(self) -> SimWhiteLight:
        return self.site.lamp

    def get_calibratorstate(self) -> int:
        now = self.site.clock.tai()
        if self.lamp.light(now):
            return 3 if self.brightness else 2  # Ready; NotReady while the light lingers after CalibratorOff
        return 2 if self.lamp.light_appears_at() is not None or self.brightness else 1  # NotReady while striking

    def get_calibratorchanging(self) -> bool:
        return self.get_calibratorstate() == 2

    def get_brightness(self) -> int:
        return self.brightness

    def get_maxbrightness(self) -> int:
        return MAX_BRIGHTNESS

    def get_coverstate(self) -> int:
        state = self.lamp.shutter_state(self.site.clock.tai())
        return {ShutterState.CLOSED: 1, ShutterState.OPEN: 3}.get(state, 2)  # Moving while UNKNOWN

    def get_covermoving(self) -> bool:
        return self.get_coverstate() == 2

    def put_calibratoron(self, form: Mapping[str, str]) -> None:
        brightness = integer(form, "Brightness")
        if not 0 <= brightness <= MAX_BRIGHTNESS:
            raise ServedError(INVALID_VALUE, f"Brightness {brightness} is outside 0 to {MAX_BRIGHTNESS}")
        already = self.brightness > 0
        self.brightness = brightness
        if not already:
            self.lamp.power_on(self.site.clock.tai())

    def put_calibratoroff(self, form: Mapping[str, str]) -> None:
        self.brightness = 0
        self.lamp.power_off(self.site.clock.tai())

    def put_opencover(self, form: Mapping[str, str]) -> None:
        self.lamp.move_shutter(True, self.site.clock.tai())

    def put_closecover(self, form: Mapping[str, str]) -> None:
        self.lamp.move_shutter(False, self.site.clock.tai())

    def put_haltcover(self, form: Mapping[str, str]) -> None:
        raise ServedError(NOT_IMPLEMENTED, "the lamp's shutter moves all the way once commanded")


@dataclass(frozen=True)
class _Switch:
    name: str
    writable: bool
    maximum: float
    read: Callable[[float], float]


class ServedChiller(ServedDevice):
    """The lamp's chiller as an Alpaca Switch: its power (writable), supply temperature and coolant flow (read-only)."""

    device_type = "switch"
    description = "obsq's lamp chiller: power, supply temperature (C), coolant flow (L/min)"
    interface_version = 2

    def __init__(self, site: ServedSite) -> None:
        super().__init__(site)
        lamp = site.lamp
        self.switches = [
            _Switch("Chiller power", True, 1.0, lambda now: 1.0 if lamp.chiller_running else 0.0),
            _Switch("Chiller supply temperature", False, 60.0, lamp.supply_temperature),
            _Switch("Chiller coolant flow", False, 10.0, lamp.coolant_flow),
        ]

    def _switch(self, params: Mapping[str, str]) -> tuple[int, _Switch]:
        switch_id = integer(params, "Id")
        if not 0 <= switch_id < len(self.switches):
            raise ServedError(INVALID_VALUE, f"Id {switch_id} is outside 0 to {len(self.switches) - 1}")
        return switch_id, self.switches[switch_id]

    def get_maxswitch(self) -> int:
        return len(self.switches)

    def get_getswitchname(self, params: Mapping[str, str]) -> str:
        return self._switch(params)[1].name

    def get_getswitchdescription(self, params: Mapping[str, str]) -> str:
        return self._switch(params)[1].name

    def get_canwrite(self, params: Mapping[str, str]) -> bool:
        return self._switch(params)[1].writable

    def get_canasync(self, params: Mapping[str, str]) -> bool:
        self._switch(params)
        return False

    def get_minswitchvalue(self, params: Mapping[str, str]) -> float:
        self._switch(params)
        return 0.0

    def get_maxswitchvalue(self, params: Mapping[str, str]) -> float:
        return self._switch(params)[1].maximum

    def get_switchstep(self, params: Mapping[str, str]) -> float:
        return 1.0 if self._switch(params)[1].writable else 0.001

    def get_getswitchvalue(self, params: Mapping[str, str]) -> float:
        return round(self._switch(params)[1].read(self.site.clock.tai()), 4)

    def get_getswitch(self, params: Mapping[str, str]) -> bool:
        return self._switch(params)[1].read(self.site.clock.tai()) >= 0.5

    def put_setswitch(self, form: Mapping[str, str]) -> None:
        self._set(form, 1.0 if boolean(form, "State") else 0.0)

    def put_setswitchvalue(self, form: Mapping[str, str]) -> None:
        value = number(form, "Value")
        switch_id, switch = self._switch(form)
        if not 0.0 <= value <= switch.maximum:
            raise ServedError(INVALID_VALUE, f"Value {value:g} is outside 0 to {switch.maximum:g} (switch {switch_id})")
        self._set(form, value)

    def _set(self, form: Mapping[str, str], value: float) -> None:
        switch_id, switch = self._switch(form)
        if not switch.writable:
            raise ServedError(INVALID_OPERATION, f"switch {switch_id} ({switch.name}) is read-only")
        now = self.site.clock.tai()
        if value >= 0.5:
            self.site.lamp.start_chiller(now)
        else:
            self.site.lamp.stop_chiller(now)


class ServedWheel(ServedDevice):
    """One of the spectrograph's wheels as an Alpaca FilterWheel: its slot names, Position -1 while it moves."""

    device_type = "filterwheel"
    interface_version = 2

    def __init__(self, site: ServedSite, number: int, wheel: Wheel) -> None:
        super().__init__(site, number)
        self.wheel = wheel
        self.description = f"obsq's {wheel.kind} wheel"

    def get_names(self) -> list[str]:
        return self.wheel.names

    def get_focusoffsets(self) -> list[int]:
        return [0] * len(self.wheel.names)

    def get_position(self) -> int:
        return self.wheel.position(self.site.clock.tai())[0]

    def put_position(self, form: Mapping[str, str]) -> None:
        slot = integer(form, "Position")
        if not 0 <= slot < len(self.wheel.names):
            raise ServedError(INVALID_VALUE, f"Position {slot} is outside 0 to {len(self.wheel.names) - 1}")
        self.wheel.start_move(self.wheel.names[slot], self.site.clock.tai())


class ServedDome(ServedDevice):
    """The dome model as an Alpaca Dome: azimuth (its encoder's, drift and all), home, one shutter (the main door)."""

    device_type = "dome"
    description = "obsq's dome: an azimuth drive whose encoder drifts with use, and its main shutter door"
    interface_version = 2
    OPEN, CLOSED, OPENING, CLOSING, ERROR = range(5)

    def __init__(self, site: ServedSite) -> None:
        super().__init__(site)
        self.dome = SimDome(site.clock)
        self._slew = _Task()
        self._shutter = _Task()
        self._opening = False
        self._at_home = False

    def get_azimuth(self) -> float:
        return round(self.dome.azimuth_deg, 4)

    def get_athome(self) -> bool:
        return self._at_home and not self._slew.running

    def get_atpark(self) -> bool:
        return False

    def get_slewing(self) -> bool:
        return self._slew.running or self._shutter.running

    def get_shutterstatus(self) -> int:
        if self._shutter.running:
            return self.OPENING if self._opening else self.CLOSING
        return self.CLOSED if self.dome.door_percent(MAIN) <= 0.0 else self.OPEN

    def get_canfindhome(self) -> bool:
        return True

    def get_cansetazimuth(self) -> bool:
        return True

    def get_cansetshutter(self) -> bool:
        return True

    def get_canpark(self) -> bool:
        return False

    def get_cansetpark(self) -> bool:
        return False

    def get_cansetaltitude(self) -> bool:
        return False

    def get_canslave(self) -> bool:
        return False

    def get_slaved(self) -> bool:
        return False

    def get_cansyncazimuth(self) -> bool:
        return False

    def put_slewtoazimuth(self, form: Mapping[str, str]) -> None:
        azimuth = number(form, "Azimuth")
        if not 0.0 <= azimuth < 360.0:
            raise ServedError(INVALID_VALUE, f"Azimuth {azimuth:g} is outside 0 to 360")
        self._at_home = False
        self._slew.start(lambda halt: self.dome.move(azimuth, halt, math.inf))

    def put_findhome(self, form: Mapping[str, str]) -> None:
        async def home(halt: asyncio.Event) -> None:
            await self.dome.home(halt, math.inf)
            self._at_home = not halt.is_set()

        self._at_home = False
        self._slew.start(home)

    def put_openshutter(self, form: Mapping[str, str]) -> None:
        self._opening = True
        self._shutter.start(lambda halt: self.dome.move_door(MAIN, True, halt, math.inf))

    def put_closeshutter(self, form: Mapping[str, str]) -> None:
        self._opening = False
        self._shutter.start(lambda halt: self.dome.move_door(MAIN, False, halt, math.inf))

    def put_abortslew(self, form: Mapping[str, str]) -> None:
        self._slew.stop()
        self._shutter.stop()


class ServedMount(ServedDevice):
    """The mount model as an Alpaca Telescope: alt/az slews at its speeds, tracking, its limits as InvalidValue."""

    device_type = "telescope"
    description = "obsq's alt-az mount: limits, speeds and settling"
    interface_version = 3

    def __init__(self, site: ServedSite) -> None:
        super().__init__(site)
        self.mount = MountModel()
        self.tracking = False
        self._slew = _Task()

    def get_azimuth(self) -> float:
        return round(self.mount.azimuth % 360.0, 5)

    def get_altitude(self) -> float:
        return round(self.mount.elevation, 5)

    def get_slewing(self) -> bool:
        return self._slew.running

    def get_tracking(self) -> bool:
        return self.tracking

    def get_atpark(self) -> bool:
        return False

    def get_canpark(self) -> bool:
        return False

    def get_canunpark(self) -> bool:
        return False

    def get_canslewaltazasync(self) -> bool:
        return True

    def get_cansettracking(self) -> bool:
        return True

    def put_tracking(self, form: Mapping[str, str]) -> None:
        self.tracking = boolean(form, "Tracking")

    def put_slewtoaltazasync(self, form: Mapping[str, str]) -> None:
        azimuth, altitude = number(form, "Azimuth"), number(form, "Altitude")
        if self.tracking:
            raise ServedError(INVALID_OPERATION, "an alt/az slew needs tracking off")
        if not 0.0 <= azimuth < 360.0:
            raise ServedError(INVALID_VALUE, f"Azimuth {azimuth:g} is outside 0 to 360")
        low, high = self.mount.azimuth_limits
        azimuth = min(
            (a for a in (azimuth - 360.0, azimuth, azimuth + 360.0) if low <= a <= high),
            key=lambda a: abs(a - self.mount.azimuth),
            default=azimuth,
        )  # the wrap nearest where it is
        try:
            duration = self.mount.slew_time(azimuth, altitude)
        except ExpectedError as exc:
            raise ServedError(INVALID_VALUE, str(exc)) from None

        async def slew(halt: asyncio.Event) -> None:
            with contextlib.suppress(TimeoutError):
                await self.site.clock.wait_for(halt.wait(), duration)
                return  # aborted where it was (the model moves at arrival only)
            self.mount.arrive(azimuth, altitude)

        self._slew.start(slew)

    def put_abortslew(self, form: Mapping[str, str]) -> None:
        self._slew.stop()


class ServedSite:
    """The simulated observatory's hardware, served: every device and the light the camera sees."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.lamp = SimWhiteLight()
        self.camera = ServedCamera(self)
        self.calibrator = ServedCalibrator(self)
        self.chiller = ServedChiller(self)
        self.filter = ServedWheel(self, 0, Wheel("filter", FILTERS, 3.0, 2.0))
        self.disperser = ServedWheel(self, 1, Wheel("disperser", DISPERSERS, 3.0, 2.0))
        self.dome = ServedDome(self)
        self.mount = ServedMount(self)
        self.devices: dict[tuple[str, int], ServedDevice] = {
            (d.device_type, d.number): d
            for d in (self.camera, self.calibrator, self.chiller, self.filter, self.disperser, self.dome, self.mount)
        }

    def utc_iso(self) -> str:
        moment = datetime.datetime.fromtimestamp(self.clock.tai() - 37.0, tz=datetime.UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]

    def snapshot(self) -> ObservatoryState:
        """What the camera's light depends on now, from the served devices' own state."""
        now = self.clock.tai()
        lit = self.lamp.light(now)
        since = self.lamp.light_appears_at()
        return ObservatoryState(
            now_tai=now,
            lamp_basic_state=2 if lit else 1,
            lamp_power_w=LAMP_MAX_POWER_W * self.calibrator.brightness / MAX_BRIGHTNESS if lit else 0.0,
            lamp_warmup_end_tai=(since + LAMP_WARMUP_S) if since is not None else 0.0,
            lamp_shutter=SHUTTER_OPEN if self.lamp.shutter_state(now) == ShutterState.OPEN else 1,
            filter=self.filter.wheel.position(now)[1] or None,
            disperser=self.disperser.wheel.position(now)[1] or None,
            dome_azimuth_true=self.dome.dome.true_azimuth_deg,
            mount_azimuth=self.mount.mount.azimuth,
            mount_elevation=self.mount.mount.elevation,
        )

    def inject(self, name: str, value: str) -> None:
        """A fault in the served hardware, by name (SERVED_INJECTIONS); ValueError naming the rule."""
        if name not in SERVED_INJECTIONS:
            known = ", ".join(SERVED_INJECTIONS)
            raise ValueError(f"unknown injection {name!r} for the served devices; they take {known}")
        if name == "dome-drift":
            self.dome.dome.inject_drift(float(value or 3.0))
        elif name == "lamp-no-strike":
            self.lamp.fail_next_strikes(int(value or 3))
        elif name == "lamp-stuck-on":
            self.lamp.stick_lamp_on()
        elif name == "coolant-flow":
            self.lamp.restrict_coolant_flow(float(value or 0.4))
        elif name == "filter-stuck":
            self.filter.wheel.stick()
        else:
            self.camera.failing_readouts = int(value or 1)
