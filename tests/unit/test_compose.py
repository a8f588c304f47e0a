"""The composition root: drivers chosen once, fault injections by name, clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from obsq.csc.atdome.csc import ATDomeCsc
from obsq.csc.atdome.sim import SimDome
from obsq.csc.atwhitelight.csc import ATWhiteLightCsc
from obsq.csc.build import HARDWARE
from obsq.csc.bus.memory import MemoryBroker
from obsq.csc.clock import ManualClock
from obsq.csc.compose import CompositionError, build_component
from obsq.csc.injections import injections_for


def build(name: str, inject: list[str], simulate: bool = True) -> object:
    return build_component(
        name, index=0, simulate=simulate, inject=inject, data_dir=Path("unused"), bus=MemoryBroker().client(),
        clock=ManualClock(),
    )  # fmt: skip


def test_injections_reach_the_simulators() -> None:
    dome = build("ATDome", ["dome-drift=2.5"])
    assert isinstance(dome, ATDomeCsc)
    assert isinstance(dome.driver, SimDome)
    assert dome.driver.model.pending_slip_deg == 2.5
    lamp = build("ATWhiteLight", ["lamp-no-strike=2", "chiller-alarm=10"])
    assert isinstance(lamp, ATWhiteLightCsc)
    lamp.driver.start_chiller(100.0)
    assert lamp.driver.chiller_status(105.0).alarms is False
    assert lamp.driver.chiller_status(110.0).alarms is True


def test_refusals_name_the_problem() -> None:
    with pytest.raises(CompositionError, match="unknown injection 'dome-wobble'"):
        build("ATDome", ["dome-wobble"])
    with pytest.raises(CompositionError, match="injection 'dome-drift' is for ATDome, not ATCamera"):
        build("ATCamera", ["dome-drift"])
    with pytest.raises(
        CompositionError, match="ATMCS has only a simulated driver in this build: run it with --simulate"
    ):
        build("ATMCS", [], simulate=False)


def test_up_hands_each_component_its_own_injections() -> None:
    texts = ["dome-drift=3", "readout-failure", "lamp-no-strike=1"]
    assert {name: injections_for(name, texts) for name in HARDWARE} == {
        "ATWhiteLight": ["lamp-no-strike=1"],
        "ATSpectrograph": [],
        "ATDome": ["dome-drift=3"],
        "ATMCS": [],
        "ATCamera": ["readout-failure"],
    }
