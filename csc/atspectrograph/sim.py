"""The simulated spectrograph: a filter and a disperser Wheel, and the stuck-wheel fault hook."""

from __future__ import annotations

from obsq.csc.atspectrograph.model import Wheel


class SimSpectrograph:
    """LATISS's two wheels, simulated by the Wheel model."""

    def __init__(self) -> None:
        self._filter = Wheel("filter", ["empty_1"], 3.0, 2.0)
        self._disperser = Wheel("disperser", ["empty_1"], 3.0, 2.0)
        self._filter_stuck = False

    @property
    def filter_wheel(self) -> Wheel:
        return self._filter

    @property
    def disperser_wheel(self) -> Wheel:
        return self._disperser

    def configure(self, filters: list[str], dispersers: list[str], seconds_per_slot: float, settle_s: float) -> None:
        self._filter = Wheel("filter", filters, seconds_per_slot, settle_s)
        self._disperser = Wheel("disperser", dispersers, seconds_per_slot, settle_s)
        if self._filter_stuck:
            self._filter.stick()

    # -- fault injection ------------------------------------------------------------------

    def stick_filter_wheel(self) -> None:
        """The filter wheel's next change never arrives (compose's `filter-stuck`)."""
        self._filter_stuck = True
        self._filter.stick()
