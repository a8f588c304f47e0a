"""ATSpectrograph service: two wheels, their change times, in-position events, stuck-wheel fault."""

from __future__ import annotations

from typing import Any, NoReturn

from obsq.csc.atspectrograph.model import SpectrographDriver, WheelDriver
from obsq.csc.component import BaseCsc, Command
from obsq.csc.core.errors import DeviceError, DeviceTimeoutError, ExpectedError
from obsq.csc.core.states import State

#: Fault code when a wheel does not arrive within change_timeout.
WHEEL_STUCK = 10
#: Fault code when a wheel's device refuses, fails or does not answer a call.
WHEEL_DEVICE_FAILED = 11


def target_name(data: dict[str, Any], wheel: WheelDriver, field: str) -> str:
    """The slot a change command asks for, by name or (Rubin's other way) by slot number; ExpectedError if both."""
    name, slot = data.get("name", ""), data.get(field, 0)
    if name and slot:
        raise ExpectedError(f"change{field.capitalize()}: give a name or a slot ({field}), not both ({name!r}, {slot})")
    if name:
        return str(name)
    if slot >= len(wheel.names):
        raise ExpectedError(
            f"change{field.capitalize()}: slot {slot} is empty: the {wheel.kind} wheel has {len(wheel.names)} slots "
            f"(0-{len(wheel.names) - 1}: {', '.join(wheel.names)})"
        )
    return str(wheel.names[slot])


class ATSpectrographCsc(BaseCsc):
    """LATISS filter and disperser wheels."""

    device_fault_codes = frozenset({WHEEL_DEVICE_FAILED})

    def __init__(self, *, driver: SpectrographDriver, index: int = 0, **kwargs: Any) -> None:
        super().__init__("ATSpectrograph", index=index, **kwargs)
        self.driver = driver
        self.change_timeout_s = 60.0
        self.register_command("changeFilter", self._do_change_filter)
        self.register_command("changeDisperser", self._do_change_disperser)
        self.register_command("homeWheels", self._do_home)

    def devices(self) -> str:
        wheels = (self.driver.filter_wheel.device, self.driver.disperser_wheel.device)
        return "simulated" if wheels == ("simulated", "simulated") else f"filter {wheels[0]}, disperser {wheels[1]}"

    async def configure(self, config: dict[str, Any]) -> None:
        try:
            await self.driver.configure(
                config["filters"], config["dispersers"], config["seconds_per_slot"], config["settle_time"]
            )
        except DeviceError as exc:
            report = f"the wheels could not be reached: {exc}"
            await self.fault(WHEEL_DEVICE_FAILED, report)
            raise ExpectedError(report) from None
        self.change_timeout_s = config["change_timeout"]
        for wheel, asked in ((self.driver.filter_wheel, "filters"), (self.driver.disperser_wheel, "dispersers")):
            if wheel.names != config[asked]:  # a real wheel names its own slots: its names are the ones used
                self.log.warning(
                    "wheel_names_from_device", wheel=wheel.kind, device=wheel.device,
                    device_names=",".join(wheel.names), configured=",".join(config[asked]),
                )  # fmt: skip

    async def handle_summary_state(self) -> None:
        if self.summary_state in (State.DISABLED, State.ENABLED):
            await self.publish_event(
                "installed",
                {
                    "filters": ",".join(self.driver.filter_wheel.names),
                    "dispersers": ",".join(self.driver.disperser_wheel.names),
                },
            )
            await self._publish(self.driver.filter_wheel, "Filter")
            await self._publish(self.driver.disperser_wheel, "Disperser")

    async def _publish(self, wheel: WheelDriver, which: str) -> None:
        slot, name = wheel.position()
        await self.publish_event(f"reported{which}Position", {"slot": slot, "name": name})
        await self.publish_event(f"{which.lower()}InPosition", {"inPosition": slot >= 0})

    async def _change(self, command: Command, wheel: WheelDriver, which: str) -> str:
        name = target_name(command.data, wheel, which.lower())
        wheel.slot_of(name)  # an unknown name is refused here, with the wheel where it is
        await command.in_progress(self.change_timeout_s + 1, f"moving {wheel.kind} wheel to {name}")
        await self.publish_event(f"{which.lower()}InPosition", {"inPosition": False})
        try:
            await wheel.move(name, self.change_timeout_s)
        except DeviceTimeoutError:
            report = f"the {wheel.kind} wheel did not reach {name} within {self.change_timeout_s:g} s: stuck"
            await self._fail(wheel, which, WHEEL_STUCK, report)
        except DeviceError as exc:
            report = f"the {wheel.kind} wheel failed moving to {name}: {exc}"
            await self._fail(wheel, which, WHEEL_DEVICE_FAILED, report)
        await self._publish(wheel, which)
        return f"{wheel.kind} {name} in position"

    async def _fail(self, wheel: WheelDriver, which: str, code: int, report: str) -> NoReturn:
        await self._publish(wheel, which)
        await self.fault(code, report)
        raise ExpectedError(report)

    async def _do_change_filter(self, command: Command) -> str:
        return await self._change(command, self.driver.filter_wheel, "Filter")

    async def _do_change_disperser(self, command: Command) -> str:
        return await self._change(command, self.driver.disperser_wheel, "Disperser")

    async def _do_home(self, command: Command) -> str:
        for wheel, which in ((self.driver.filter_wheel, "Filter"), (self.driver.disperser_wheel, "Disperser")):
            command.data = {"name": wheel.names[0], which.lower(): 0}
            await self._change(command, wheel, which)
        return "wheels homed"

    async def _publish_goodbye(self) -> None:
        await self.driver.close()
        await super()._publish_goodbye()
