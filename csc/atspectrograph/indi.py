"""The spectrograph's wheels on INDI filter wheels (issue 24): INDI's standard FILTER_SLOT and FILTER_NAME.

INDI's wheels count slots from 1 (FILTER_SLOT_VALUE) and name them in FILTER_NAME
(FILTER_SLOT_NAME_1…); obsq counts from 0, as Rubin's ATSpectrograph. A change is a
newNumberVector FILTER_SLOT; the driver answers Busy while the wheel turns, then Ok at the slot,
or Alert with a message saying why.
"""

from __future__ import annotations

from obsq.csc.core.errors import DeviceError, ExpectedError
from obsq.csc.indi.client import IndiConnection, alert

SLOT, SLOT_VALUE, NAMES, NAME_PREFIX = "FILTER_SLOT", "FILTER_SLOT_VALUE", "FILTER_NAME", "FILTER_SLOT_NAME_"
#: Real seconds for a device to define its properties and to connect.
CONNECT_WAIT_S = 15.0


class IndiWheel:
    """One INDI filter wheel as a WheelDriver."""

    def __init__(self, kind: str, connection: IndiConnection, device: str) -> None:
        self.kind = kind
        self.link = connection
        self.name_on_server = device
        self.device = f"{connection.where}/{device}"
        self._names: list[str] = []

    @property
    def names(self) -> list[str]:
        return self._names

    async def connect(self) -> None:
        """Connect the server and the device (INDI's CONNECTION switch), then read its slot names."""
        link, device = self.link, self.name_on_server
        await link.connect_device(device, CONNECT_WAIT_S, SLOT, NAMES)
        names = link.vector(device, NAMES)
        assert names is not None
        numbered = sorted((int(k.removeprefix(NAME_PREFIX)), v) for k, v in names.values.items()
                          if k.startswith(NAME_PREFIX) and k.removeprefix(NAME_PREFIX).isdigit())  # fmt: skip
        if not numbered:
            raise DeviceError(f"{self.device}: {NAMES} names no slot")
        self._names = [v or f"slot {n - 1}" for n, v in numbered]

    def slot_of(self, name: str) -> int:
        try:
            return self._names.index(name)
        except ValueError:
            raise ExpectedError(f"unknown {self.kind} {name!r}; installed: {', '.join(self._names)}") from None

    async def move(self, name: str, timeout_s: float) -> None:
        slot = self.slot_of(name)
        link, device = self.link, self.name_on_server
        vector = link.vector(device, SLOT)
        if vector is None:
            raise DeviceError(f"{self.device}: the device has no {SLOT} (disconnected?)")
        vector.state = "Busy"  # until the driver answers this request (its answer sets the state)
        await link.send(device, SLOT, "Number", {SLOT_VALUE: float(slot + 1)})
        await link.wait_until(lambda: vector.state in ("Ok", "Idle", "Alert"), timeout_s,
                              f"the {self.kind} wheel to reach slot {slot} ({name})")  # fmt: skip
        if vector.state == "Alert":
            raise alert(link, vector, f"moving to slot {slot} ({name})")
        if self.position()[0] != slot:
            raise DeviceError(f"{self.device}: the {self.kind} wheel stopped at {self.position()}, not slot {slot}")

    def position(self) -> tuple[int, str]:
        vector = self.link.vector(self.name_on_server, SLOT)
        if vector is None or vector.state == "Busy" or SLOT_VALUE not in vector.values:
            return (-1, "")
        try:
            slot = round(vector.number(SLOT_VALUE)) - 1
        except ValueError:
            return (-1, "")
        return (slot, self._names[slot]) if 0 <= slot < len(self._names) else (-1, "")

    async def close(self) -> None:
        await self.link.close()
