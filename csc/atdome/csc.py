"""ATDome service: azimuth moves and homing, the shutter doors, stopping, and the drifting encoder.

Every motion is the driver's, awaited (the simulator's on the injected clock, a real dome's
polled); `stopMotion` halts every motion where it is. A device that fails, refuses or does not
arrive puts the component in FAULT (DOME_DEVICE_FAILED) naming the device and the call. A dome
with one shutter (an Alpaca Dome) has the main door only: the dropout door is refused by name.

As Rubin's ATDome: azimuth moves need the axis homed since start-up and are refused while
homing; homing when already homed and on the home switch does nothing;
`openShutter`/`closeShutter` stop an azimuth move and sequence the doors (model.py), and a
new shutter command supersedes one in progress. Events follow Rubin's (azimuthState,
door states and commanded states, in-position events); `position` telemetry is sampled once a
second of motion and at every start and end.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from typing import Any, NoReturn

from obsq.csc.atdome.model import (
    DROPOUT,
    ENCODER_COUNTS_PER_360,
    MAIN,
    AzimuthCommandedState,
    AzimuthState,
    DomeDriver,
    DoorCommandedState,
    DoorState,
    shortest,
)
from obsq.csc.component import BaseCsc, Command
from obsq.csc.core.errors import DeviceError, ExpectedError
from obsq.csc.core.states import State

#: Seconds of (clock) time between `position` samples during a motion.
SAMPLE_S = 1.0
#: Fault code of a dome that refused, failed or did not answer (or did not arrive in time).
DOME_DEVICE_FAILED = 11
#: Seconds a motion may take past its estimate from the configured speeds (a real dome's own speed).
MOTION_MARGIN_S = 60.0


class _Motion:
    """One axis's motion in progress, which `stop` ends where it is."""

    def __init__(self) -> None:
        self.stop = asyncio.Event()
        self.why = ""
        self.idle = asyncio.Event()
        self.idle.set()

    def halt(self, why: str) -> bool:
        if self.idle.is_set():
            return False
        self.why = why
        self.stop.set()
        return True


class ATDomeCsc(BaseCsc):
    """The dome; where its driver knows the true azimuth (a simulation), it publishes `simulationTruth`."""

    device_fault_codes = frozenset({DOME_DEVICE_FAILED})

    def __init__(self, *, driver: DomeDriver, index: int = 0, **kwargs: Any) -> None:
        super().__init__("ATDome", index=index, **kwargs)
        self.driver = driver
        self._azimuth = _Motion()
        self._shutter = _Motion()
        self._homing = False
        self._home_switch = False
        self._azimuth_state = AzimuthState.NOTINMOTION
        self._door_motion: dict[str, DoorState | None] = {MAIN: None, DROPOUT: None}
        self._door_commanded = {MAIN: DoorCommandedState.UNKNOWN, DROPOUT: DoorCommandedState.UNKNOWN}
        self._az_in_position = False
        for name, handler in (
            ("moveAzimuth", self._do_move),
            ("homeAzimuth", self._do_home),
            ("stopMotion", self._do_stop),
            ("openShutter", self._do_open_shutter),
            ("closeShutter", self._do_close_shutter),
            ("moveShutterMainDoor", self._do_move_main_door),
            ("moveShutterDropoutDoor", self._do_move_dropout_door),
        ):
            # homeAzimuth may overlap itself, to answer "Already homing" (Rubin's allow_multiple_callbacks)
            self.register_command(name, handler, concurrent=name == "homeAzimuth")

    def devices(self) -> str:
        return self.driver.device

    async def configure(self, config: dict[str, Any]) -> None:
        try:
            await self.driver.configure(
                config["azimuth_speed"], config["settle_time"], config["drift_per_degree"],
                config["main_door_time"], config["dropout_door_time"],
            )  # fmt: skip
        except DeviceError as exc:
            await self._fail(f"the dome could not be reached: {exc}")

    async def handle_summary_state(self) -> None:
        if self.summary_state in (State.DISABLED, State.ENABLED):
            await self._publish_position()
            await self._publish_azimuth_state()
            await self._publish_doors()
        else:  # leaving ENABLED stops every motion
            self._azimuth.halt(f"ATDome went to {self.summary_state.name}")
            self._shutter.halt(f"ATDome went to {self.summary_state.name}")

    # -- publishing -------------------------------------------------------------------------

    async def _publish_position(self) -> None:
        await self.publish_event(
            "azimuthPosition", {"azimuth": round(self.driver.azimuth_deg, 4), "homed": self.driver.homed}
        )
        truth = self.driver.true_azimuth_deg
        if truth is not None:
            await self.publish_event("simulationTruth", {"azimuth": round(truth, 4)})
        await self._sample()

    async def _sample(self) -> None:
        azimuth = self.driver.azimuth_deg
        sample = {
            "azimuthPosition": round(azimuth, 4),
            "azimuthEncoderPosition": round(azimuth / 360.0 * ENCODER_COUNTS_PER_360),
        }
        for door in self.driver.doors:  # a door the dome lacks has no percentage
            sample[f"{door}DoorOpeningPercentage"] = round(self.driver.door_percent(door), 2)
        await self.publish_telemetry("position", sample)

    async def _publish_azimuth_state(self) -> None:
        await self.publish_event("azimuthState", {
            "state": int(self._azimuth_state), "homing": self._homing,
            "homed": self.driver.homed, "homeSwitch": self._home_switch,
        })  # fmt: skip
        await self._publish_all_in_position()

    async def _publish_doors(self) -> None:
        shutter = self.driver.shutter
        for door in self.driver.doors:
            state = self._door_motion[door] or shutter.door(door).state
            await self.publish_event(f"{door}DoorState", {"state": int(state)})
            await self.publish_event(f"{door}DoorCommandedState", {"commandedState": int(self._door_commanded[door])})
        await self.publish_event("shutterInPosition", {"inPosition": self._shutter_in_position()})
        await self._publish_all_in_position()

    def _shutter_in_position(self) -> bool:
        """Both doors at rest where they were commanded (false until commanded, as Rubin's)."""
        reached = {DoorCommandedState.OPENED: DoorState.OPENED, DoorCommandedState.CLOSED: DoorState.CLOSED}
        for door in self.driver.doors:
            commanded = self._door_commanded[door]
            if self._door_motion[door] or commanded == DoorCommandedState.UNKNOWN:
                return False
            if commanded in reached and self.driver.shutter.door(door).state != reached[commanded]:
                return False
        return True

    async def _publish_all_in_position(self) -> None:
        shutter_ok = self._shutter_in_position()
        azimuth_ok = self._az_in_position and self._azimuth.idle.is_set()
        await self.publish_event("allAxesInPosition", {"inPosition": shutter_ok and azimuth_ok})

    async def _set_az_in_position(self, value: bool) -> None:
        self._az_in_position = value
        await self.publish_event("azimuthInPosition", {"inPosition": value})

    # -- motion -----------------------------------------------------------------------------

    async def _drive(self, motion: _Motion, work: Awaitable[None], what: str) -> bool:
        """Await the driver's motion `work`, sampling `position` once a second of clock time.

        Returns whether it arrived (False: halted where it is); a device failure is a FAULT naming `what`.
        """
        task = asyncio.ensure_future(work)
        try:
            while True:
                try:
                    await self.clock.wait_for(asyncio.shield(task), SAMPLE_S)
                    break
                except TimeoutError:
                    await self._sample()
        except DeviceError as exc:
            await self._fail(f"{what} failed: {exc}")
        finally:
            task.cancel()
        return not motion.stop.is_set()

    @contextlib.asynccontextmanager
    async def _taking(self, motion: _Motion, why: str) -> AsyncIterator[None]:
        """Own `motion`: one in progress is halted first (superseded, as `why` says)."""
        if motion.halt(why):
            await motion.idle.wait()
        motion.stop.clear()
        motion.idle.clear()
        try:
            yield
        finally:
            motion.idle.set()

    # -- azimuth ----------------------------------------------------------------------------

    async def _do_move(self, command: Command) -> str:
        azimuth = float(command.data["azimuth"]) % 360.0  # any angle, as Rubin's ATDome takes it
        if self._homing:
            raise ExpectedError("Cannot move azimuth while homing")
        if not self.driver.homed:
            raise ExpectedError("The azimuth axis is not homed (homeAzimuth first)")
        duration = self.driver.move_time(azimuth)
        await command.in_progress(duration + MOTION_MARGIN_S + 5, f"moving to {azimuth:g} deg")
        async with self._taking(self._azimuth, "superseded by a new moveAzimuth"):
            await self.publish_event("azimuthCommandedState", {
                "azimuth": azimuth, "commandedState": int(AzimuthCommandedState.GOTOPOSITION)})  # fmt: skip
            await self.publish_event("lastAzimuthGoTo", {"position": azimuth})
            await self._set_az_in_position(False)
            self._home_switch = False
            direction = shortest(self.driver.azimuth_deg, azimuth)
            self._azimuth_state = AzimuthState.MOVINGCW if direction >= 0 else AzimuthState.MOVINGCCW
            await self._publish_azimuth_state()
            try:
                arrived = await self._drive(
                    self._azimuth,
                    self.driver.move(azimuth, self._azimuth.stop, duration + MOTION_MARGIN_S),
                    f"the move to {azimuth:g} deg",
                )
            finally:
                self._azimuth_state = AzimuthState.NOTINMOTION
            if not arrived:
                await self.publish_event("azimuthCommandedState", {
                    "azimuth": self.driver.azimuth_deg, "commandedState": int(AzimuthCommandedState.STOP)})  # fmt: skip
            else:
                self._az_in_position = True
        await self._publish_position()
        await self._publish_azimuth_state()
        if not arrived:
            raise ExpectedError(
                f"the move to {azimuth:g} deg was stopped at {self.driver.azimuth_deg:.2f} deg ({self._azimuth.why})"
            )
        await self._set_az_in_position(True)
        return f"at {azimuth:g} deg"

    async def _do_home(self, command: Command) -> str:
        if self._homing:
            raise ExpectedError("Already homing")
        if not self.driver.can_home:
            raise ExpectedError(f"the dome {self.driver.device} cannot find home; it keeps its own azimuth")
        if self.driver.homed and self._home_switch:
            self.log.warning("not_homing", reason="already homed and on the home switch")
            return "already homed and on the home switch"
        duration = self.driver.home_time()
        await command.in_progress(duration + MOTION_MARGIN_S + 5, "homing")
        async with self._taking(self._azimuth, "superseded by homeAzimuth"):
            await self.publish_event("azimuthCommandedState", {
                "azimuth": 0.0, "commandedState": int(AzimuthCommandedState.HOME)})  # fmt: skip
            await self._set_az_in_position(False)
            self._homing, self._azimuth_state = True, AzimuthState.MOVINGCCW
            await self._publish_azimuth_state()
            try:
                arrived = await self._drive(
                    self._azimuth, self.driver.home(self._azimuth.stop, duration + MOTION_MARGIN_S), "homing"
                )
            finally:
                self._homing, self._azimuth_state = False, AzimuthState.NOTINMOTION
            if arrived:
                self._home_switch = True
                self._az_in_position = True
            await self.publish_event("azimuthCommandedState", {
                "azimuth": self.driver.azimuth_deg, "commandedState": int(AzimuthCommandedState.STOP)})  # fmt: skip
        await self._publish_position()
        await self._publish_azimuth_state()
        if not arrived:
            raise ExpectedError(f"homing was stopped at {self.driver.azimuth_deg:.2f} deg ({self._azimuth.why})")
        await self._set_az_in_position(True)
        return "homed at 0 deg"

    async def _do_stop(self, command: Command) -> str:
        stopped = [name for name, motion in (("azimuth", self._azimuth), ("shutter", self._shutter))
                   if motion.halt("stopMotion")]  # fmt: skip
        self._door_commanded = {MAIN: DoorCommandedState.STOP, DROPOUT: DoorCommandedState.STOP}
        await self._publish_doors()
        if not stopped:
            return f"not moving; at {self.driver.azimuth_deg:.2f} deg"
        return f"stopping the {' and the '.join(stopped)}"

    # -- shutter ----------------------------------------------------------------------------

    async def _do_open_shutter(self, command: Command) -> str:
        return await self._move_doors(command, "shutter", True)

    async def _do_close_shutter(self, command: Command) -> str:
        return await self._move_doors(command, "shutter", False)

    async def _do_move_main_door(self, command: Command) -> str:
        return await self._move_doors(command, MAIN, command.data["open"])

    async def _do_move_dropout_door(self, command: Command) -> str:
        return await self._move_doors(command, DROPOUT, command.data["open"])

    async def _move_doors(self, command: Command, action: str, open_: bool) -> str:
        what = {"shutter": "the shutter", MAIN: "the main door", DROPOUT: "the dropout door"}[action]
        way = "open" if open_ else "closed"
        if action != "shutter" and action not in self.driver.doors:
            raise ExpectedError(f"the dome {self.driver.device} has no {action} door (one shutter: use openShutter)")
        if action == "shutter":
            self._azimuth.halt(f"{command.name} stops the azimuth")
        async with self._taking(self._shutter, f"superseded by {command.name}"):
            shutter = self.driver.shutter
            steps = [(door, way_) for door, way_ in shutter.plan(action, open_) if door in self.driver.doors]
            commanded = DoorCommandedState.OPENED if open_ else DoorCommandedState.CLOSED
            for door in self.driver.doors if action == "shutter" else [action]:
                self._door_commanded[door] = commanded
            await self._publish_doors()
            total = sum(shutter.door(door).time_to(way_) for door, way_ in steps) + MOTION_MARGIN_S
            await command.in_progress(total + 10, f"{what} to {way}")
            for door, door_open in steps:
                self._door_motion[door] = DoorState.OPENING if door_open else DoorState.CLOSING
                await self._publish_doors()
                try:
                    arrived = await self._drive(
                        self._shutter,
                        self.driver.move_door(door, door_open, self._shutter.stop, total),
                        f"moving the {door} door",
                    )
                finally:
                    self._door_motion[door] = None
                await self._publish_doors()
                await self._sample()
                if not arrived:
                    pct = self.driver.door_percent(door)
                    raise ExpectedError(f"the {door} door was stopped at {pct:.0f}% open ({self._shutter.why})")
        return f"{what} {way}"

    async def _fail(self, report: str) -> NoReturn:
        await self.fault(DOME_DEVICE_FAILED, report)
        raise ExpectedError(report)

    async def _publish_goodbye(self) -> None:
        await self.driver.close()
        await super()._publish_goodbye()
