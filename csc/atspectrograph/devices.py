"""The spectrograph on real devices: two wheels, each on its own protocol (Alpaca or INDI), as one SpectrographDriver.

A real wheel names its own slots and moves at its own speed: `configure` connects the wheels
and reads their names; the configuration's names and times are the simulator's.
"""

from __future__ import annotations

from typing import Protocol

from obsq.csc.atspectrograph.model import WheelDriver


class DeviceWheel(WheelDriver, Protocol):
    """A wheel on a real device: connected at start, let go at the end."""

    async def connect(self) -> None: ...

    async def close(self) -> None: ...


class DeviceSpectrograph:
    """LATISS's filter and disperser wheels on two real devices."""

    def __init__(self, filter_wheel: DeviceWheel, disperser_wheel: DeviceWheel) -> None:
        self._filter = filter_wheel
        self._disperser = disperser_wheel

    @property
    def filter_wheel(self) -> DeviceWheel:
        return self._filter

    @property
    def disperser_wheel(self) -> DeviceWheel:
        return self._disperser

    async def configure(
        self, filters: list[str], dispersers: list[str], seconds_per_slot: float, settle_s: float
    ) -> None:
        """Connect both wheels and read their slot names (the arguments are the simulator's)."""
        await self._filter.connect()
        await self._disperser.connect()

    async def close(self) -> None:
        await self._filter.close()
        await self._disperser.close()
