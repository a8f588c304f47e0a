"""ATMCS service: slews within limits (the mount's driver awaited), tracking on/off, offsets from a slew's position.

Offsets (obsq's `offsetAzEl`/`resetOffsets`, Rubin's ATPtg commands on the mount here): arcsec
in azimuth on the sky and in elevation from the last `moveToPosition`, which clears them; the
mount moves there and keeps tracking if it was. A simulated mount also publishes
`simulationTruth`: where it really points (the configured pointing error added) and, while it
tracks, the ICRS position it follows, fixed when tracking starts (the simulated camera's sky).
"""

from __future__ import annotations

import math
from typing import Any, NoReturn

from obsq.csc.atmcs.model import MountDriver
from obsq.csc.component import BaseCsc, Command
from obsq.csc.core.errors import DeviceError, ExpectedError
from obsq.csc.core.sky import radec
from obsq.csc.core.states import State

TRACKING_DISABLED, TRACKING_ENABLED = 8, 9
#: Fault code of a mount that refused, failed or did not answer (or did not arrive in time).
MOUNT_DEVICE_FAILED = 11
#: Seconds a slew may take past its estimate from the configured speeds (a real mount's own speed).
SLEW_MARGIN_S = 60.0
#: Samples in one mount_AzEl_Encoders message (Rubin's cRIO: 100 at 100 Hz).
ENCODER_SAMPLES = 100


class ATMCSCsc(BaseCsc):
    """The auxiliary telescope mount."""

    device_fault_codes = frozenset({MOUNT_DEVICE_FAILED})

    def __init__(self, *, driver: MountDriver, index: int = 0, **kwargs: Any) -> None:
        super().__init__("ATMCS", index=index, **kwargs)
        self.driver = driver
        self._track_id = 0
        #: The last slew's position (deg) and the offsets in place from it (arcsec, az on the sky).
        self._origin: tuple[float, float] | None = None
        self._offsets = (0.0, 0.0)
        self._pointing_error = (0.0, 0.0)
        #: The ICRS position (deg) the mount really follows while it tracks.
        self._tracked: tuple[float, float] | None = None
        self.register_command("moveToPosition", self._do_move)
        self.register_command("offsetAzEl", self._do_offset)
        self.register_command("resetOffsets", self._do_reset_offsets)
        self.register_command("startTracking", self._do_start_tracking)
        self.register_command("stopTracking", self._do_stop_tracking)

    def devices(self) -> str:
        return self.driver.device

    async def configure(self, config: dict[str, Any]) -> None:
        (az_low, az_high), (el_low, el_high) = config["azimuth_limits"], config["elevation_limits"]
        self._pointing_error = (float(config["pointing_error"][0]), float(config["pointing_error"][1]))
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
            try:
                await self.driver.set_tracking(False)
            except DeviceError as exc:  # leaving service: said, not raised
                self.log.error("tracking_not_stopped", device=self.driver.device, reason=str(exc))
            await self._publish()

    async def _publish(self) -> None:
        await self.publish_event("mountPosition", {"azimuth": self.driver.azimuth, "elevation": self.driver.elevation})
        await self.publish_event(
            "atMountState", {"state": TRACKING_ENABLED if self.driver.tracking else TRACKING_DISABLED}
        )
        await self.publish_telemetry("mount_AzEl_Encoders", self._encoders())
        await self.publish_event("pointingOffsets", {"azimuth": self._offsets[0], "elevation": self._offsets[1]})
        if self.driver.device == "simulated":
            await self._publish_truth()

    def _true_azel(self) -> tuple[float, float]:
        """Where the simulated mount really points: the commanded position, its pointing error added."""
        error_az, error_el = self._pointing_error
        elevation = self.driver.elevation + error_el / 3600.0
        azimuth = self.driver.azimuth + error_az / 3600.0 / max(math.cos(math.radians(elevation)), 0.05)
        return azimuth, elevation

    async def _publish_truth(self) -> None:
        azimuth, elevation = self._true_azel()
        if self.driver.tracking and self._tracked is None:
            self._tracked = await self.clock.to_thread(radec, azimuth, elevation, self.clock.tai())
        elif not self.driver.tracking:
            self._tracked = None
        ra, dec = self._tracked or await self.clock.to_thread(radec, azimuth, elevation, self.clock.tai())
        await self.publish_event("simulationTruth", {"azimuth": azimuth, "elevation": elevation,
                                 "tracking": self._tracked is not None, "ra": ra, "declination": dec})  # fmt: skip

    def _encoders(self) -> dict[str, Any]:
        """Rubin's 100-sample encoder telemetry, here of the mount at rest where it is (no raw encoders: 0)."""
        raw = {f"{axis}Encoder{n}Raw": [0.0] * ENCODER_SAMPLES for axis in ("elevation", "azimuth") for n in (1, 2, 3)}
        return {
            "cRIO_timestamp": self.clock.tai(), "trackId": self._track_id,
            "elevationCalculatedAngle": [float(self.driver.elevation)] * ENCODER_SAMPLES,
            "azimuthCalculatedAngle": [float(self.driver.azimuth)] * ENCODER_SAMPLES, **raw,
        }  # fmt: skip

    async def _do_move(self, command: Command) -> str:
        azimuth, elevation = command.data["azimuth"], command.data["elevation"]
        self.driver.slew_time(azimuth, elevation)  # refuses a position beyond the limits, before anything changes
        self._origin, self._offsets = (azimuth, elevation), (0.0, 0.0)
        return await self._slew(command, azimuth, elevation)

    async def _do_offset(self, command: Command) -> str:
        if self._origin is None:
            raise ExpectedError("no slew to offset from: moveToPosition first")
        az, el = command.data["az"], command.data["el"]
        if command.data["relative"]:
            az, el = self._offsets[0] + az, self._offsets[1] + el
        return await self._offset_to(command, (az, el))

    async def _do_reset_offsets(self, command: Command) -> str:
        if self._origin is None:
            return "no offsets"
        return await self._offset_to(command, (0.0, 0.0))

    async def _offset_to(self, command: Command, offsets: tuple[float, float]) -> str:
        assert self._origin is not None
        origin_az, origin_el = self._origin
        elevation = origin_el + offsets[1] / 3600.0
        azimuth = origin_az + offsets[0] / 3600.0 / max(math.cos(math.radians(elevation)), 0.05)
        self.driver.slew_time(azimuth, elevation)  # refuses a position beyond the limits
        self._offsets = offsets
        tracking = self.driver.tracking
        await self._slew(command, azimuth, elevation)
        if tracking:  # the tracked position moves with the offset
            self._tracked = None
            await self._tracking(True)
        return f"offsets az {offsets[0]:g} el {offsets[1]:g} arcsec"

    async def _slew(self, command: Command, azimuth: float, elevation: float) -> str:
        duration = self.driver.slew_time(azimuth, elevation)  # refuses a position beyond the limits
        await command.in_progress(duration + SLEW_MARGIN_S + 5, f"slewing to az {azimuth:g} el {elevation:g}")
        self._track_id += 1
        await self.publish_event("target", {
            "azimuth": azimuth, "elevation": elevation, "azimuthVelocity": 0.0, "elevationVelocity": 0.0,
            "nasmyth1RotatorAngle": 0.0, "nasmyth1RotatorAngleVelocity": 0.0, "nasmyth2RotatorAngle": 0.0,
            "nasmyth2RotatorAngleVelocity": 0.0, "taiTime": self.clock.tai(), "trackId": self._track_id,
            "tracksys": "LOCAL", "radesys": ""})  # fmt: skip
        await self.publish_event("allAxesInPosition", {"inPosition": False})
        try:
            await self.driver.slew(azimuth, elevation, duration + SLEW_MARGIN_S)
        except DeviceError as exc:
            await self._publish()
            await self._fail(f"the slew to az {azimuth:g} el {elevation:g} failed: {exc}")
        self._tracked = None  # a mount still tracking follows the sky from where it arrived
        await self.publish_event("allAxesInPosition", {"inPosition": True})
        await self._publish()
        return f"at az {azimuth:g} el {elevation:g}"

    async def _do_start_tracking(self, command: Command) -> None:
        await self._tracking(True)

    async def _do_stop_tracking(self, command: Command) -> None:
        await self._tracking(False)

    async def _tracking(self, on: bool) -> None:
        if on and not self.driver.tracking:
            self._tracked = None  # fixed anew where the mount points now
        try:
            await self.driver.set_tracking(on)
        except DeviceError as exc:
            await self._fail(f"tracking could not be turned {'on' if on else 'off'}: {exc}")
        await self._publish()

    async def _fail(self, report: str) -> NoReturn:
        await self.fault(MOUNT_DEVICE_FAILED, report)
        raise ExpectedError(report)

    async def _publish_goodbye(self) -> None:
        await self.driver.close()
        await super()._publish_goodbye()
