"""The spectrograph's wheels on ASCOM Alpaca FilterWheels (issue 24).

A real wheel names its own slots (`names`, read when the service starts) and moves at its own
speed: `move` asks for the slot (PUT position) and polls the position, which is -1 while the
wheel moves, until it is the slot asked for. The time allowed is the service's change_timeout,
in the device's clock seconds (csc/alpaca/pace.py: real seconds for a real device). What the
device says when it refuses is in the error, with its address and the call.
"""

from __future__ import annotations

from typing import Any

from obsq.csc.alpaca.address import AlpacaAddress
from obsq.csc.alpaca.client import CALL_TIMEOUT_S, AlpacaDevice
from obsq.csc.alpaca.pace import Pace
from obsq.csc.clock import Clock
from obsq.csc.core.errors import DeviceError, DeviceTimeoutError, ExpectedError

#: Seconds between two readings of a moving wheel's position (at the device's pace).
POLL_S = 0.1
#: The most slots a wheel's name list may have (a list longer than this is a broken answer).
MAX_SLOTS = 64


class AlpacaWheel:
    """One Alpaca FilterWheel as a WheelDriver."""

    def __init__(
        self,
        kind: str,
        address: AlpacaAddress,
        clock: Clock,
        *,
        call_timeout_s: float = CALL_TIMEOUT_S,
        poll_s: float = POLL_S,
    ) -> None:
        self.kind = kind
        device = AlpacaDevice(address, call_timeout_s=call_timeout_s)
        self.alpaca = device
        self.device = str(device.address)
        self.clock = clock
        self.pace = Pace(clock, poll_s)
        self.poll_s = poll_s
        self._names: list[str] = []
        self._position = (-1, "")

    @property
    def names(self) -> list[str]:
        return self._names

    async def connect(self) -> None:
        """Connect the device and read its slot names and where it is."""
        await self.alpaca.put("connected", Connected=True)
        self._names = _slot_names(await self.alpaca.get("names"), self.device)
        await self._read_position()

    def slot_of(self, name: str) -> int:
        try:
            return self._names.index(name)
        except ValueError:
            raise ExpectedError(f"unknown {self.kind} {name!r}; installed: {', '.join(self._names)}") from None

    async def move(self, name: str, timeout_s: float) -> None:
        slot = self.slot_of(name)
        await self.alpaca.put("position", Position=slot)
        deadline = self.pace.deadline(timeout_s)
        while await self._read_position() != slot:
            if deadline.passed:
                where = "moving" if self._position[0] < 0 else f"at slot {self._position[0]}"
                raise DeviceTimeoutError(
                    f"{self.device}: the {self.kind} wheel did not reach slot {slot} ({name}) within"
                    f" {timeout_s:g} s; it is {where}"
                )
            await self.pace.pause()

    def position(self) -> tuple[int, str]:
        return self._position

    async def close(self) -> None:
        await self.alpaca.close()

    async def _read_position(self) -> int:
        slot = await self.alpaca.get("position")
        if not isinstance(slot, int) or isinstance(slot, bool) or not -1 <= slot < len(self._names):
            raise DeviceError(f"{self.device} GET position: {slot!r} is not -1 or a slot of {len(self._names)}")
        self._position = (slot, self._names[slot]) if slot >= 0 else (-1, "")
        return slot


def _slot_names(value: Any, device: str) -> list[str]:
    """A FilterWheel's `names`: a non-empty list of strings; DeviceError naming what is wrong otherwise."""
    if not isinstance(value, list) or not value or len(value) > MAX_SLOTS:
        raise DeviceError(f"{device} GET names: {str(value)[:200]!r} is not a list of 1 to {MAX_SLOTS} slot names")
    if not all(isinstance(n, str) for n in value):
        raise DeviceError(f"{device} GET names: every slot name must be a string, got {str(value)[:200]}")
    return [n.strip() or f"slot {i}" for i, n in enumerate(value)]
