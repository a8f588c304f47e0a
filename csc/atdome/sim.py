"""The simulated dome: the pure DomeModel and ShutterModel as hardware, with the drift-slip fault hook.

It knows where the dome really points (`true_azimuth_deg`), which only a simulation can:
the service publishes that as `simulationTruth` for the simulated camera.
"""

from __future__ import annotations

from obsq.csc.atdome.model import DomeModel, ShutterModel


class SimDome:
    """The dome drive, simulated by DomeModel."""

    def __init__(self, model: DomeModel | None = None) -> None:
        self.model = model or DomeModel()
        self._shutter = ShutterModel()

    def configure(
        self, speed_deg_s: float, settle_s: float, drift_per_degree: float, main_door_s: float, dropout_door_s: float
    ) -> None:
        self.model.speed_deg_s = speed_deg_s
        self.model.settle_s = settle_s
        self.model.drift_per_degree = drift_per_degree
        self._shutter.main.travel_s = main_door_s
        self._shutter.dropout.travel_s = dropout_door_s

    @property
    def shutter(self) -> ShutterModel:
        return self._shutter

    def move_door(self, door: str, open_: bool, fraction: float = 1.0) -> None:
        self._shutter.door(door).move(open_, fraction)

    @property
    def azimuth_deg(self) -> float:
        return self.model.encoder_deg

    @property
    def homed(self) -> bool:
        return self.model.homed

    @property
    def true_azimuth_deg(self) -> float | None:
        return self.model.true_deg

    def move_time(self, azimuth_deg: float) -> float:
        return self.model.move_time(azimuth_deg)

    def move(self, azimuth_deg: float, fraction: float = 1.0) -> None:
        self.model.move(azimuth_deg, fraction)

    def home_time(self) -> float:
        return self.model.home_time()

    def home(self) -> None:
        self.model.home()

    # -- fault injection ------------------------------------------------------------------

    def inject_drift(self, deg: float) -> None:
        """The encoder slips `deg` degrees during the next move (compose's `dome-drift`)."""
        self.model.inject_drift(deg)
