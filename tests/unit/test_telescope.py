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
    return ATDomeCsc(driver=SimDome(kwargs["clock"]), simulation_mode=1, **kwargs)


def spectrograph(**kwargs: Any) -> ATSpectrographCsc:
    return ATSpectrographCsc(driver=SimSpectrograph(kwargs["clock"]), simulation_mode=1, **kwargs)


def mount(**kwargs: Any) -> ATMCSCsc:
    return ATMCSCsc(driver=SimMount(kwargs["clock"]), simulation_mode=1, **kwargs)


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
        with pytest.raises(AckError, match="The azimuth axis is not homed"):
            await rig.command("moveAzimuth", {"azimuth": 180.0})  # Rubin's rule: homed since start-up
        await rig.command("homeAzimuth")
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
        for given, wrapped in ((-90.0, 270.0), (723.0, 3.0)):  # any angle, as Rubin's ATDome takes it
            await rig.command("moveAzimuth", {"azimuth": given})
            assert rig.remote.event("azimuthPosition").get()["azimuth"] == pytest.approx(wrapped)


async def test_stop_motion_stops_a_move_where_the_dome_is() -> None:
    async with component_rig(dome, "ATDome") as rig:
        await rig.enable()
        await rig.command("homeAzimuth")
        move = asyncio.ensure_future(rig.remote.command("moveAzimuth", {"azimuth": 90.0}))
        await rig.clock.advance(10.0)  # 40 of 90 degrees at 4 deg/s
        ack = await rig.remote.command("stopMotion")
        assert ack.result == "stopping the azimuth"
        with pytest.raises(AckError, match=r"the move to 90 deg was stopped at 3\d\.\d+ deg \(stopMotion\)"):
            await move
        position = rig.remote.event("azimuthPosition").get()["azimuth"]
        assert 30.0 < position < 45.0  # where it was, not where it was going
        assert rig.remote.event("azimuthInPosition").get() == {"inPosition": False}
        assert rig.remote.event("azimuthCommandedState").get()["commandedState"] == 4  # STOP
        assert (await rig.remote.command("stopMotion")).result.startswith("not moving")
        await rig.command("moveAzimuth", {"azimuth": 90.0})  # and it moves again from there
        assert rig.remote.event("azimuthPosition").get()["azimuth"] == 90.0


def record(rig: Any, *names: str) -> list[tuple[str, Any]]:
    """Every sample of the named events and telemetry, in arrival order, as (topic, value)."""
    seen: list[tuple[str, Any]] = []
    for name in names:
        reader = rig.remote.telemetry(name) if name == "position" else rig.remote.event(name)

        def keep(envelope: Any, name: str = name) -> None:
            data = envelope.data
            seen.append((name, data if name == "position" else data.get("state", data.get("inPosition"))))

        reader.callback = keep
    return seen


async def test_shutter_opens_main_then_dropout_and_closes_the_other_way() -> None:
    async with component_rig(dome, "ATDome") as rig:
        await rig.enable()
        assert rig.remote.event("mainDoorState").get() == {"state": 1}  # CLOSED at start-up
        assert rig.remote.event("shutterInPosition").get() == {"inPosition": False}  # until commanded (Rubin's)
        seen = record(rig, "mainDoorState", "dropoutDoorState", "shutterInPosition", "position")
        t0 = rig.clock.tai()
        await rig.command("openShutter")
        assert rig.clock.tai() - t0 == pytest.approx(75.0 + 40.0)  # main door, then dropout door
        states = [(n, v) for n, v in seen if n != "position"]
        assert states == [
            ("mainDoorState", 4), ("mainDoorState", 2), ("dropoutDoorState", 4), ("dropoutDoorState", 2),
            ("shutterInPosition", True),  # OPENING, OPENED; in position when both are where commanded
        ]  # fmt: skip
        main = [v["mainDoorOpeningPercentage"] for n, v in seen if n == "position"]
        assert main == sorted(main)
        assert main[-1] == 100.0
        assert len(main) > 75  # sampled every second of travel
        assert rig.remote.event("mainDoorCommandedState").get() == {"commandedState": 3}  # OPENED
        seen.clear()
        await rig.command("closeShutter")
        states = [(n, v) for n, v in seen if n not in ("position", "shutterInPosition")]
        assert states == [("dropoutDoorState", 5), ("dropoutDoorState", 1), ("mainDoorState", 5), ("mainDoorState", 1)]
        assert rig.remote.event("allAxesInPosition").get() == {"inPosition": False}  # azimuth never commanded
        await rig.command("homeAzimuth")
        assert rig.remote.event("allAxesInPosition").get() == {"inPosition": True}


async def test_door_rules_refuse_by_name_and_move_nothing() -> None:
    async with component_rig(dome, "ATDome") as rig:
        await rig.enable()
        with pytest.raises(AckError, match="Cannot move the dropout door until the main door is fully open"):
            await rig.command("moveShutterDropoutDoor", {"open": True})
        assert rig.remote.event("dropoutDoorState").get() == {"state": 1}
        assert rig.remote.event("dropoutDoorCommandedState").get() == {"commandedState": 1}  # UNKNOWN: not commanded
        await rig.command("moveShutterMainDoor", {"open": True})
        move = asyncio.ensure_future(rig.remote.command("moveShutterDropoutDoor", {"open": True}))
        await rig.clock.advance(10.0)  # a quarter of the dropout door's 40 s
        assert (await rig.remote.command("stopMotion")).result == "stopping the shutter"
        with pytest.raises(AckError, match=r"the dropout door was stopped at 2\d% open \(stopMotion\)"):
            await move
        assert rig.remote.event("dropoutDoorState").get() == {"state": 3}  # PARTIALLYOPENED
        with pytest.raises(AckError, match="Cannot close the main door until the dropout door is fully closed"):
            await rig.command("moveShutterMainDoor", {"open": False})
        await rig.command("closeShutter")  # sequences the doors: dropout first
        assert rig.remote.telemetry("position").get()["mainDoorOpeningPercentage"] == 0.0


async def test_close_shutter_supersedes_an_opening_and_stops_the_azimuth() -> None:
    async with component_rig(dome, "ATDome") as rig:
        await rig.enable()
        await rig.command("homeAzimuth")
        slew = asyncio.ensure_future(rig.remote.command("moveAzimuth", {"azimuth": 180.0}))
        opening = asyncio.ensure_future(rig.remote.command("openShutter"))
        await rig.clock.advance(30.0)
        with pytest.raises(AckError, match=r"stopped at .* deg \(openShutter stops the azimuth\)"):
            await slew
        closing = asyncio.ensure_future(rig.remote.command("closeShutter"))
        with pytest.raises(AckError, match=r"the main door was stopped at 40% open \(superseded by closeShutter\)"):
            await opening
        await rig.run(closing)
        assert rig.remote.event("mainDoorState").get() == {"state": 1}
        assert rig.remote.event("mainDoorCommandedState").get() == {"commandedState": 2}  # CLOSED


async def test_homing_is_published_as_rubins_home_dome_waits_for_it() -> None:
    async with component_rig(dome, "ATDome") as rig:
        await rig.enable()
        assert rig.remote.event("azimuthState").get() == {
            "state": 1,
            "homing": False,
            "homed": False,
            "homeSwitch": False,
        }
        states: list[dict[str, Any]] = []
        rig.remote.event("azimuthState").callback = lambda envelope: states.append(envelope.data)
        homing = asyncio.ensure_future(rig.remote.command("homeAzimuth"))
        await rig.clock.advance(1.0)
        with pytest.raises(AckError, match="Cannot move azimuth while homing"):
            await rig.command("moveAzimuth", {"azimuth": 3.0})
        with pytest.raises(AckError, match="Already homing"):
            await rig.command("homeAzimuth")
        await rig.run(homing)
        assert [(s["homing"], s["homed"]) for s in states] == [(True, False), (False, True)]
        assert states[-1] == {"state": 1, "homing": False, "homed": True, "homeSwitch": True}
        assert (await rig.remote.command("homeAzimuth")).result == "already homed and on the home switch"
        await rig.command("moveAzimuth", {"azimuth": 3.0})
        assert rig.remote.event("azimuthState").get()["homeSwitch"] is False
        assert rig.remote.event("lastAzimuthGoTo").get() == {"position": 3.0}


async def test_dome_azimuth_that_is_no_angle_is_refused_before_sending() -> None:
    async with component_rig(dome, "ATDome") as rig:
        await rig.enable()
        with pytest.raises(ValidationError, match="'azimuth': 'north' is not of type 'number'"):
            await rig.remote.command("moveAzimuth", {"azimuth": "north"})


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
        # Rubin's shapes: the target with its track id and system, the encoders as 100 samples
        target = rig.remote.event("target").get()
        assert (target["trackId"], target["tracksys"], target["azimuthVelocity"]) == (1, "LOCAL", 0.0)
        encoders = rig.remote.telemetry("mount_AzEl_Encoders").get()
        assert encoders["azimuthCalculatedAngle"] == pytest.approx([188.7] * 100, abs=1e-6)  # tracked for no time
        assert encoders["elevationCalculatedAngle"] == pytest.approx([39.0] * 100, abs=1e-6)
        assert len(encoders["azimuthEncoder3Raw"]) == 100


async def test_the_mount_tracks_an_icrs_target_follows_the_sky_and_offsets_from_it() -> None:
    """raDecTarget: the mount arrives where the target is, follows it; offsets move it; absorbed ones stay."""
    from obsq.csc.core.sky import altaz, separation_deg

    ra_h, dec = 6.0, -60.0
    async with component_rig(mount, "ATMCS") as rig:
        await rig.enable()
        await rig.command("raDecTarget", {"ra": ra_h, "declination": dec, "targetName": "south"})
        assert rig.remote.event("atMountState").get() == {"state": 9}
        assert rig.remote.event("target").get()["tracksys"] == "SIDEREAL"

        async def where() -> tuple[float, float]:
            await rig.command("offsetAzEl", {"az": 0.0, "el": 0.0})  # asks the mount where it is now
            position = rig.remote.event("mountPosition").get()
            return position["azimuth"], position["elevation"]

        def on_target(position: tuple[float, float], arcsec: float = 0.5) -> bool:
            return separation_deg(position, altaz(ra_h * 15.0, dec, rig.clock.tai())) * 3600 < arcsec

        assert on_target(await where())
        first = await where()
        await rig.clock.advance(600.0)
        later = await where()
        assert on_target(later)
        assert separation_deg(first, later) > 0.5  # ten minutes of the sky's turning
        truth = rig.remote.event("simulationTruth").get()
        # the configured pointing error: 12" in azimuth on the sky, -8" in elevation
        assert separation_deg((truth["azimuth"], truth["elevation"]), later) * 3600 == pytest.approx(14.42, abs=0.05)
        await rig.command("offsetAzEl", {"az": 30.0, "el": -40.0})
        moved = await where()
        assert separation_deg(moved, altaz(ra_h * 15.0, dec, rig.clock.tai())) * 3600 == pytest.approx(50.0, abs=0.5)
        await rig.command("offsetAzEl", {"az": 30.0, "el": -40.0, "relative": False})  # replaces: the same place
        assert separation_deg(await where(), altaz(ra_h * 15.0, dec, rig.clock.tai())) * 3600 == pytest.approx(
            50.0, abs=0.5
        )
        await rig.command("offsetAzEl", {"az": -12.0, "el": 8.0, "absorb": True})  # a pointing correction
        await rig.command("raDecTarget", {"ra": ra_h, "declination": dec})  # clears the others, keeps it
        offsets = rig.remote.event("pointingOffsets").get()
        assert offsets == {"azimuth": 0.0, "elevation": 0.0, "absorbedAzimuth": -12.0, "absorbedElevation": 8.0}
        truth = rig.remote.event("simulationTruth").get()
        where_truly = (truth["azimuth"], truth["elevation"])
        assert separation_deg(where_truly, altaz(ra_h * 15.0, dec, rig.clock.tai())) * 3600 < 0.5  # corrected
        await rig.command("resetOffsets", {})
        assert rig.remote.event("pointingOffsets").get()["absorbedAzimuth"] == 0.0
        with pytest.raises(AckError, match=r"elevation .* is beyond the limits"):
            await rig.command("raDecTarget", {"ra": 6.0, "declination": 80.0})  # never above the horizon here
