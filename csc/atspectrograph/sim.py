"""The simulated spectrograph: a filter and a disperser Wheel on the scaled clock, and the stuck-wheel fault hook."""

from __future__ import annotations

from obsq.csc.atspectrograph.model import Wheel
from obsq.csc.clock import Clock
from obsq.csc.core.errors import DeviceTimeoutError


class SimWheel:
    """A Wheel model awaited on the simulated clock: a move sleeps its change time, a stuck wheel times out."""

    device = "simulated"

    def __init__(self, model: Wheel, clock: Clock) -> None:
        self.model = model
        self.kind = model.kind
        self.clock = clock

    @property
    def names(self) -> list[str]:
        return self.model.names

    def slot_of(self, name: str) -> int:
        return self.model.slot_of(name)

    async def move(self, name: str, timeout_s: float) -> None:
        arrives = self.model.start_move(name, self.clock.tai())
        await self.clock.sleep(max(0.0, min(arrives - self.clock.tai(), timeout_s)))
        if not self.model.in_position(self.clock.tai()):
            raise DeviceTimeoutError(f"the simulated {self.kind} wheel did not reach {name} within {timeout_s:g} s")

    def position(self) -> tuple[int, str]:
        return self.model.position(self.clock.tai())


class SimSpectrograph:
    """LATISS's two wheels, simulated by the Wheel model."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._filter = SimWheel(Wheel("filter", ["empty_1"], 3.0, 2.0), clock)
        self._disperser = SimWheel(Wheel("disperser", ["empty_1"], 3.0, 2.0), clock)
        self._filter_stuck = False

    @property
    def filter_wheel(self) -> SimWheel:
        return self._filter

    @property
    def disperser_wheel(self) -> SimWheel:
        return self._disperser

    async def configure(
        self, filters: list[str], dispersers: list[str], seconds_per_slot: float, settle_s: float
    ) -> None:
        self._filter = SimWheel(Wheel("filter", filters, seconds_per_slot, settle_s), self.clock)
        self._disperser = SimWheel(Wheel("disperser", dispersers, seconds_per_slot, settle_s), self.clock)
        if self._filter_stuck:
            self._filter.model.stick()

    async def close(self) -> None:
        """Nothing to let go of."""

    # -- fault injection ------------------------------------------------------------------

    def stick_filter_wheel(self) -> None:
        """The filter wheel's next change never arrives (compose's `filter-stuck`)."""
        self._filter_stuck = True
        self._filter.model.stick()
