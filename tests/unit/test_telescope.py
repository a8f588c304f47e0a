"""ATSpectrograph, ATDome and ATMCS on virtual time: conformance, rules, faults, bad input."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from obsq.csc.atdome.csc import ATDomeCsc
from obsq.csc.atdome.model import DomeModel, shortest
from obsq.csc.atdome.sim import SimDome
from obsq.csc.atmcs.csc import ATMCSCsc
from obsq.csc.atmcs.sim import SimMount
from obsq.csc.atspectrograph.csc import ATSpectrographCsc
from obsq.csc.atspectrograph.sim import SimSpectrograph
from obsq.csc.component import AckError
from obsq.csc.core.errors import ValidationError
from obsq.csc.core.states import State
from obsq.csc.testing import check_state_conformance, component_rig


def dome(**kwargs: Any) -> ATDomeCsc:
    return ATDomeCsc(driver=SimDome(), simulation_mode=1, **kwargs)


def spectrograph(**kwargs: Any) -> ATSpectrographCsc:
    return ATSpectrographCsc(driver=SimSpectrograph(), simulation_mode=1, **kwargs)


def mount(**kwargs: Any) -> ATMCSCsc:
    return ATMCSCsc(driver=SimMount(), simulation_mode=1, **kwargs)


@pytest.mark.parametrize(("factory", "name"), [(spectrograph, "ATSpectrograph"), (dome, "ATDome"), (mount, "ATMCS")])
async def test_state_conformance(factory: Any, name: str) -> None:
    async with component_rig(factory, name) as rig:
        await check_state_conformance(rig.csc, rig.remote)
        assert rig.csc.summary_state == State.OFFLINE


async def test_filter_change_takes_slot_time_and_reports_position() -> None:
    async with component_rig(spectrograph, "ATSpectrograph") as rig:
        await rig.enable()
        installed = await rig.remote.event("installed").aget(timeout_s=1)
        assert installed["filters"].split(",")[:4] == ["empty_1", "SDSSr_65mm", "SDSSg_65mm", "SDSSz_65mm"]
        t0 = rig.clock.tai()
        ack = await rig.command("changeFilter", {"name": "SDSSg_65mm"})
        assert ack.result == "filter SDSSg_65mm in position"
        assert rig.clock.tai() - t0 == pytest.approx(2 * 3.0 + 2.0)
        assert rig.remote.event("reportedFilterPosition").get() == {"slot": 2, "name": "SDSSg_65mm"}
        assert rig.remote.event("filterInPosition").get() == {"inPosition": True}
        await rig.command("changeDisperser", {"name": "SDSSy_65mm"})
        assert rig.remote.event("reportedDisperserPosition").get() == {"slot": 1, "name": "SDSSy_65mm"}


async def test_unknown_filter_is_refused_and_wheel_stays() -> None:
    async with component_rig(spectrograph, "ATSpectrograph") as rig:
        await rig.enable()
        with pytest.raises(AckError, match="unknown filter 'SDSSq_65mm'; installed: empty_1, SDSSr_65mm"):
            await rig.command("changeFilter", {"name": "SDSSq_65mm"})
        assert rig.remote.event("reportedFilterPosition").get() == {"slot": 0, "name": "empty_1"}
        assert rig.csc.summary_state == State.ENABLED


async def test_stuck_filter_wheel_faults() -> None:
    async with component_rig(spectrograph, "ATSpectrograph") as rig:
        assert isinstance(rig.csc, ATSpectrographCsc)
        assert isinstance(rig.csc.driver, SimSpectrograph)
        rig.csc.driver.stick_filter_wheel()
        await rig.enable()
        with pytest.raises(AckError, match="did not reach SDSSr_65mm within 60 s: stuck"):
            await rig.command("changeFilter", {"name": "SDSSr_65mm"})
        assert rig.csc.summary_state == State.FAULT


async def test_dome_moves_at_its_speed_and_drifts_with_use() -> None:
    async with component_rig(dome, "ATDome") as rig:
        await rig.enable()
        t0 = rig.clock.tai()
        await rig.command("moveAzimuth", {"azimuth": 180.0})
        assert rig.clock.tai() - t0 == pytest.approx(180 / 4.0 + 2.0)
        for azimuth in (3.0, 183.0, 3.0, 183.0, 3.0):
            await rig.command("moveAzimuth", {"azimuth": azimuth})
        assert rig.remote.event("azimuthPosition").get()["azimuth"] == 3.0
        truth = rig.remote.event("simulationTruth").get()["azimuth"]
        assert truth == pytest.approx(3.0 + 0.005 * (180 + 177 + 180 * 4))  # ~5.4 deg: misaligned
        await rig.command("homeAzimuth")
        assert rig.remote.event("simulationTruth").get() == {"azimuth": 0.0}
        await rig.command("moveAzimuth", {"azimuth": 3.0})
        assert rig.remote.event("simulationTruth").get()["azimuth"] == pytest.approx(3.015)


async def test_stop_motion_stops_a_move_where_the_dome_is() -> None:
    async with component_rig(dome, "ATDome") as rig:
        await rig.enable()
        move = asyncio.ensure_future(rig.remote.command("moveAzimuth", {"azimuth": 90.0}))
        await rig.clock.advance(10.0)  # 40 of 90 degrees at 4 deg/s
        ack = await rig.remote.command("stopMotion")
        assert ack.result == "stopping"
        with pytest.raises(AckError, match=r"the move to 90 deg was stopped at 3\d\.\d+ deg"):
            await move
        position = rig.remote.event("azimuthPosition").get()["azimuth"]
        assert 30.0 < position < 45.0  # where it was, not where it was going
        assert rig.remote.event("azimuthInPosition").get() == {"inPosition": False}
        assert rig.remote.event("azimuthCommandedState").get()["commandedState"] == 1  # STOP
        assert (await rig.remote.command("stopMotion")).result.startswith("not moving")
        await rig.command("moveAzimuth", {"azimuth": 90.0})  # and it moves again from there
        assert rig.remote.event("azimuthPosition").get()["azimuth"] == 90.0


async def test_dome_azimuth_out_of_range_is_refused_before_sending() -> None:
    async with component_rig(dome, "ATDome") as rig:
        await rig.enable()
        with pytest.raises(ValidationError, match="'azimuth': 360 is greater than or equal to the maximum of 360"):
            await rig.remote.command("moveAzimuth", {"azimuth": 360})


def test_shortest_rotation() -> None:
    assert shortest(350, 10) == 20
    assert shortest(10, 350) == -20
    model = DomeModel(drift_per_degree=0.0)
    model.inject_drift(3.0)
    assert model.true_deg == 0.0
    model.move(3.0)
    assert model.true_deg == 6.0  # the slip happens during the next move
    model.move(10.0)
    assert model.true_deg == 13.0


async def test_mount_slew_and_limits() -> None:
    async with component_rig(mount, "ATMCS") as rig:
        await rig.enable()
        t0 = rig.clock.tai()
        await rig.command("moveToPosition", {"azimuth": 188.7, "elevation": 39.0})
        assert rig.clock.tai() - t0 == pytest.approx(188.7 / 4.0 + 3.0)
        assert rig.remote.event("mountPosition").get() == {"azimuth": 188.7, "elevation": 39.0}
        with pytest.raises(AckError, match="elevation 2 deg is beyond the limits 5 to 90 deg"):
            await rig.command("moveToPosition", {"azimuth": 0, "elevation": 2})
        with pytest.raises(AckError, match="azimuth 300 deg is beyond the limits -270 to 270 deg"):
            await rig.command("moveToPosition", {"azimuth": 300, "elevation": 40})
        assert rig.remote.event("mountPosition").get() == {"azimuth": 188.7, "elevation": 39.0}
        await rig.command("startTracking")
        assert rig.remote.event("atMountState").get() == {"state": 9}
        await rig.command("stopTracking")
        assert rig.remote.event("atMountState").get() == {"state": 8}
