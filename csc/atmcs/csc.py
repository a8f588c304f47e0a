"""ATMCS service: slews within limits (the mount's driver awaited), tracking on/off, offsets from a slew's position.

Offsets (obsq's `offsetAzEl`/`resetOffsets`, Rubin's ATPtg commands on the mount here): arcsec
in azimuth on the sky and in elevation from the last `moveToPosition`, which clears them, or
absorbed (a pointing correction), kept and applied to every slew after; the mount moves there
and keeps tracking if it was. A simulated mount also publishes
`simulationTruth`: where it really points (the configured pointing error added), in az/el and
ICRS (the simulated camera's sky). `raDecTarget` (ATPtg's) slews to an ICRS position and tracks
it; `startTracking` follows the sky from where the mount points; a simulated mount that tracks
moves with its ICRS position whenever it is asked where it is.
"""

from __future__ import annotations

import math
from typing import Any, NoReturn

from obsq.csc.atmcs.model import MountDriver, MountModel
from obsq.csc.component import BaseCsc, Command
from obsq.csc.core.errors import DeviceError, ExpectedError
from obsq.csc.core.sky import altaz, radec
from obsq.csc.core.states import State

TRACKING_DISABLED, TRACKING_ENABLED = 8, 9
#: Fault code of a mount that refused, failed or did not answer (or did not arrive in time).
MOUNT_DEVICE_FAILED = 11
#: Seconds a slew may take past its estimate from the configured speeds (a real mount's own speed).
SLEW_MARGIN_S = 60.0
#: Samples in one mount_AzEl_Encoders message (Rubin's cRIO: 100 at 100 Hz).
ENCODER_SAMPLES = 100


def offset_position(origin: tuple[float, float], *offsets: tuple[float, float]) -> tuple[float, float]:
    """The az/el (deg) of a position with offsets (arcsec; azimuth on the sky, elevation) added."""
    elevation = origin[1] + sum(o[1] for o in offsets) / 3600.0
    cos_el = max(math.cos(math.radians(elevation)), 0.05)
    return origin[0] + sum(o[0] for o in offsets) / 3600.0 / cos_el, elevation


def wrapped(azimuth: float, near: float, limits: tuple[float, float]) -> float:
    """The turn of `azimuth` (±360) within the limits nearest `near` (the cable wrap's choice), else as it is.

    >>> wrapped(349.1, 10.0, (-270.0, 270.0)), wrapped(10.0, 200.0, (-270.0, 270.0)), wrapped(100.0, -200.0, (0, 360))
    (-10.899999999999977, 10.0, 100.0)
    """
    turns = [azimuth + k * 360.0 for k in (-2, -1, 0, 1, 2)]
    inside = [a for a in turns if limits[0] <= a <= limits[1]]
    return min(inside, key=lambda a: abs(a - near)) if inside else azimuth


class ATMCSCsc(BaseCsc):
    """The auxiliary telescope mount."""

    device_fault_codes = frozenset({MOUNT_DEVICE_FAILED})

    def __init__(self, *, driver: MountDriver, index: int = 0, **kwargs: Any) -> None:
        super().__init__("ATMCS", index=index, **kwargs)
        self.driver = driver
        self._track_id = 0
        #: The last slew's az/el (deg), offsets are made from when not tracking (None before a slew).
        self._origin: tuple[float, float] | None = None
        #: Offsets in place (arcsec, az on the sky): cleared by a slew, and absorbed (kept across slews).
        self._offsets = (0.0, 0.0)
        self._absorbed = (0.0, 0.0)
        self._pointing_error = (0.0, 0.0)
        self._azimuth_limits = (-270.0, 270.0)
        #: While tracking: the ICRS position (deg) the mount is commanded to follow.
        self._track_icrs: tuple[float, float] | None = None
        self.register_command("moveToPosition", self._do_move)
        self.register_command("raDecTarget", self._do_ra_dec_target)
        self.register_command("offsetAzEl", self._do_offset)
        self.register_command("resetOffsets", self._do_reset_offsets)
        self.register_command("startTracking", self._do_start_tracking)
        self.register_command("stopTracking", self._do_stop_tracking)

    def devices(self) -> str:
        return self.driver.device

    async def configure(self, config: dict[str, Any]) -> None:
        (az_low, az_high), (el_low, el_high) = config["azimuth_limits"], config["elevation_limits"]
        self._pointing_error = (float(config["pointing_error"][0]), float(config["pointing_error"][1]))
        self._azimuth_limits = (az_low, az_high)
        try:
            await self.driver.configure(
                (az_low, az_high), (el_low, el_high), config["azimuth_speed"], config["elevation_speed"],
                config["settle_time"],
            )  # fmt: skip
        except DeviceError as exc:
            await self._fail(f"the mount could not be reached: {exc}")

    async def handle_summary_state(self) -> None:
        if self.summary_state in (State.DISABLED, State.ENABLED):
            await self._publish()
        elif self.driver.tracking:
            await self._follow_sky()
            self._track_icrs = None
            try:
                await self.driver.set_tracking(False)
            except DeviceError as exc:  # leaving service: said, not raised
                self.log.error("tracking_not_stopped", device=self.driver.device, reason=str(exc))
            await self._publish()

    async def _follow_sky(self) -> None:
        """A simulated mount that tracks is where its ICRS position is now (a real one reports where it is)."""
        if self._track_icrs is not None and isinstance(self.driver, MountModel):
            azimuth, elevation = await self._altaz(*self._track_icrs, self.clock.tai())
            self.driver.arrive(azimuth, elevation)

    async def _altaz(self, ra: float, dec: float, tai: float) -> tuple[float, float]:
        """Where an ICRS position is at `tai`, its azimuth the turn within the limits nearest the mount's."""
        azimuth, elevation = await self.clock.to_thread(altaz, ra, dec, tai)
        return wrapped(azimuth, self.driver.azimuth, self._azimuth_limits), elevation

    async def _publish(self) -> None:
        await self._follow_sky()
        await self.publish_event("mountPosition", {"azimuth": self.driver.azimuth, "elevation": self.driver.elevation})
        await self.publish_event(
            "atMountState", {"state": TRACKING_ENABLED if self.driver.tracking else TRACKING_DISABLED}
        )
        await self.publish_telemetry("mount_AzEl_Encoders", self._encoders())
        await self.publish_event("pointingOffsets", {
            "azimuth": self._offsets[0], "elevation": self._offsets[1],
            "absorbedAzimuth": self._absorbed[0], "absorbedElevation": self._absorbed[1]})  # fmt: skip
        if isinstance(self.driver, MountModel):
            await self._publish_truth()

    async def _publish_truth(self) -> None:
        """Where the simulated mount really points: the commanded position, its pointing error added.

        The ICRS position only while it tracks (0, 0 otherwise): a mount at rest needs no astronomy, and its
        process no astropy.
        """
        azimuth, elevation = offset_position((self.driver.azimuth, self.driver.elevation), self._pointing_error)
        ra, dec = 0.0, 0.0
        if self._track_icrs is not None:
            ra, dec = await self.clock.to_thread(radec, azimuth, elevation, self.clock.tai())
        await self.publish_event("simulationTruth", {"azimuth": azimuth, "elevation": elevation,
                                 "tracking": self._track_icrs is not None, "ra": ra, "declination": dec})  # fmt: skip

    def _encoders(self) -> dict[str, Any]:
        """Rubin's 100-sample encoder telemetry, here of the mount where it is (no raw encoders: 0)."""
        raw = {f"{axis}Encoder{n}Raw": [0.0] * ENCODER_SAMPLES for axis in ("elevation", "azimuth") for n in (1, 2, 3)}
        return {
            "cRIO_timestamp": self.clock.tai(), "trackId": self._track_id,
            "elevationCalculatedAngle": [float(self.driver.elevation)] * ENCODER_SAMPLES,
            "azimuthCalculatedAngle": [float(self.driver.azimuth)] * ENCODER_SAMPLES, **raw,
        }  # fmt: skip

    async def _do_move(self, command: Command) -> str:
        azimuth, elevation = command.data["azimuth"], command.data["elevation"]
        goal = offset_position((azimuth, elevation), self._absorbed)
        self.driver.slew_time(*goal)  # refuses a position beyond the limits, before anything changes
        if self.driver.tracking:
            await self._tracking(False)
        self._origin, self._offsets = (azimuth, elevation), (0.0, 0.0)
        await self._slew(command, *goal, tracksys="LOCAL")
        return f"at az {azimuth:g} el {elevation:g}" + (" (absorbed offsets applied)" if any(self._absorbed) else "")

    async def _do_ra_dec_target(self, command: Command) -> str:
        ra, dec = command.data["ra"] * 15.0, command.data["declination"]
        self.driver.slew_time(*offset_position(await self._altaz(ra, dec, self.clock.tai()), self._absorbed))  # limits
        if self.driver.tracking:
            await self._tracking(False)
        now = arrival = self.clock.tai()
        sky = await self._altaz(ra, dec, now)
        for _ in range(2):  # aim where the target will be when the mount arrives
            arrival = now + self.driver.slew_time(*offset_position(sky, self._absorbed))
            sky = await self._altaz(ra, dec, arrival)
        goal = offset_position(sky, self._absorbed)
        self._origin, self._offsets = sky, (0.0, 0.0)
        await self._slew(command, *goal, tracksys="SIDEREAL")
        icrs = await self.clock.to_thread(radec, *goal, arrival)
        await self._tracking(True, icrs)
        name = command.data["targetName"] or f"ra {command.data['ra']:g} dec {dec:g}"
        return f"tracking {name}" + (" (absorbed offsets applied)" if any(self._absorbed) else "")

    async def _do_offset(self, command: Command) -> str:
        if self._origin is None:
            raise ExpectedError("no slew to offset from: moveToPosition or raDecTarget first")
        az, el, absorb = command.data["az"], command.data["el"], command.data["absorb"]
        before = self._absorbed if absorb else self._offsets
        if command.data["relative"]:
            az, el = before[0] + az, before[1] + el
        if absorb:
            return await self._offset_to(command, self._offsets, (az, el))
        return await self._offset_to(command, (az, el), self._absorbed)

    async def _do_reset_offsets(self, command: Command) -> str:
        offsets = (0.0, 0.0) if command.data["nonAbsorbed"] else self._offsets
        absorbed = (0.0, 0.0) if command.data["absorbed"] else self._absorbed
        if self._origin is None:
            self._offsets, self._absorbed = offsets, absorbed
            await self._publish()
            return "offsets cleared"
        return await self._offset_to(command, offsets, absorbed)

    async def _offset_to(self, command: Command, offsets: tuple[float, float], absorbed: tuple[float, float]) -> str:
        """Move by the change in the offsets: from where the mount is when it tracks, else from the slew's az/el."""
        assert self._origin is not None
        before = (self._offsets[0] + self._absorbed[0], self._offsets[1] + self._absorbed[1])
        after = (offsets[0] + absorbed[0], offsets[1] + absorbed[1])
        now = self.clock.tai()
        if self._track_icrs is not None:
            await self._follow_sky()
            goal = offset_position((self.driver.azimuth, self.driver.elevation), (after[0] - before[0],
                                   after[1] - before[1]))  # fmt: skip
        else:
            goal = offset_position(self._origin, after)
        self.driver.slew_time(*goal)  # refuses a position beyond the limits
        self._offsets, self._absorbed = offsets, absorbed
        if self._track_icrs is not None:  # the tracked position moves with the offset, at once
            self._track_icrs = await self.clock.to_thread(radec, *goal, now)
        await self._slew(command, *goal, tracksys="SIDEREAL" if self._track_icrs else "LOCAL")
        return f"offsets az {after[0]:g} el {after[1]:g} arcsec ({absorbed[0]:g}, {absorbed[1]:g} absorbed)"

    async def _slew(self, command: Command, azimuth: float, elevation: float, *, tracksys: str) -> None:
        duration = self.driver.slew_time(azimuth, elevation)  # refuses a position beyond the limits
        await command.in_progress(duration + SLEW_MARGIN_S + 5, f"slewing to az {azimuth:g} el {elevation:g}")
        self._track_id += 1
        await self.publish_event("target", {
            "azimuth": azimuth, "elevation": elevation, "azimuthVelocity": 0.0, "elevationVelocity": 0.0,
            "nasmyth1RotatorAngle": 0.0, "nasmyth1RotatorAngleVelocity": 0.0, "nasmyth2RotatorAngle": 0.0,
            "nasmyth2RotatorAngleVelocity": 0.0, "taiTime": self.clock.tai(), "trackId": self._track_id,
            "tracksys": tracksys, "radesys": "ICRS" if tracksys == "SIDEREAL" else ""})  # fmt: skip
        await self.publish_event("allAxesInPosition", {"inPosition": False})
        icrs, self._track_icrs = self._track_icrs, None  # the slew is to az/el; tracking resumes on arrival
        try:
            await self.driver.slew(azimuth, elevation, duration + SLEW_MARGIN_S)
        except DeviceError as exc:
            await self._publish()
            await self._fail(f"the slew to az {azimuth:g} el {elevation:g} failed: {exc}")
        self._track_icrs = icrs
        await self.publish_event("allAxesInPosition", {"inPosition": True})
        await self._publish()

    async def _do_start_tracking(self, command: Command) -> None:
        await self._tracking(True)

    async def _do_stop_tracking(self, command: Command) -> None:
        await self._tracking(False)

    async def _tracking(self, on: bool, icrs: tuple[float, float] | None = None) -> None:
        """Tracking on (following `icrs`, else where the mount points now) or off (where it is now)."""
        await self._follow_sky()
        try:
            await self.driver.set_tracking(on)
        except DeviceError as exc:
            await self._fail(f"tracking could not be turned {'on' if on else 'off'}: {exc}")
        if on and icrs is None:
            icrs = await self.clock.to_thread(radec, self.driver.azimuth, self.driver.elevation, self.clock.tai())
        self._track_icrs = icrs if on else None
        await self._publish()

    async def _fail(self, report: str) -> NoReturn:
        await self.fault(MOUNT_DEVICE_FAILED, report)
        raise ExpectedError(report)

    async def _publish_goodbye(self) -> None:
        await self.driver.close()
        await super()._publish_goodbye()
