"""obsq's served Alpaca devices (csc/served): the models behind the protocol, in virtual time.

What a client sees through each device: a camera whose flats follow the served lamp, cover,
filter, dome and mount; a lamp NotReady until it strikes; a dome whose encoder says nothing of
its drift; ASCOM's errors for what a device refuses, naming the field and the rule.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from obsq.csc.alpaca.pace import Deadline, Pace
from obsq.csc.clock import ManualClock
from obsq.csc.served.addresses import device_urls, devices_yaml
from obsq.csc.served.devices import (
    INVALID_OPERATION,
    INVALID_VALUE,
    NOT_CONNECTED,
    NOT_IMPLEMENTED,
    READOUT_S,
    ServedError,
    ServedSite,
)


def site() -> tuple[ServedSite, ManualClock]:
    clock = ManualClock()
    served = ServedSite(clock)
    for device in served.devices.values():
        device.put("connected", {"Connected": "True"})
    return served, clock


async def expose(served: ServedSite, clock: ManualClock, duration: float, light: bool) -> np.ndarray[Any, Any]:
    served.camera.put("startexposure", {"Duration": str(duration), "Light": str(light)})
    assert served.camera.get("camerastate", {}) == 2  # exposing
    await clock.advance(duration + READOUT_S + 0.1)
    assert served.camera.get("imageready", {}) is True
    return served.camera.image_array()


async def flat_position(served: ServedSite, clock: ManualClock, *, lamp: bool = True) -> None:
    """The lamp lit and warm, its cover open, SDSSr in the beam, dome and mount at the screen."""
    served.chiller.put("setswitch", {"Id": "0", "State": "True"})
    if lamp:
        served.calibrator.put("calibratoron", {"Brightness": "191"})  # 900 of 1200 W
    served.calibrator.put("opencover", {})
    served.filter.put("position", {"Position": "1"})
    served.dome.put("findhome", {})
    await clock.advance(1000)  # the warm-up (900 s) and every motion done
    served.dome.put("slewtoazimuth", {"Azimuth": "3"})
    served.mount.put("slewtoaltazasync", {"Azimuth": "188.7", "Altitude": "39"})
    await clock.advance(200)


async def test_a_flat_follows_the_served_lamp_and_a_bias_does_not() -> None:
    served, clock = site()
    bias = await expose(served, clock, 0.0, light=False)
    assert bias.shape == (512, 512)
    level = float(np.median(bias))
    await flat_position(served, clock)
    flat = await expose(served, clock, 6.0, light=True)
    signal = float(np.median(flat)) - level
    assert 20_000 < signal < 35_000  # the LATISS procedure's ~27,000 ADU for a 6 s SDSSr flat
    served.calibrator.put("closecover", {})
    await clock.advance(10)
    dark = await expose(served, clock, 6.0, light=True)
    assert abs(float(np.median(dark)) - level) < 5  # the shutter (the cover) closed: no light


async def test_the_dome_s_drift_dims_the_flats_and_its_encoder_does_not_say_so() -> None:
    served, clock = site()
    served.inject("dome-drift", "3")
    await flat_position(served, clock)
    assert served.dome.get("azimuth", {}) == pytest.approx(3.0)  # what the device reports
    assert served.dome.dome.true_azimuth_deg == pytest.approx(6.0, abs=0.1)  # where it really points
    level = float(np.median(await expose(served, clock, 0.0, light=False)))
    signal = float(np.median(await expose(served, clock, 6.0, light=True))) - level
    assert signal < 10_000  # below the misalignment limit


async def test_the_calibrator_is_not_ready_until_the_lamp_strikes_and_a_dead_lamp_never_is() -> None:
    served, clock = site()
    calibrator = served.calibrator
    assert calibrator.get("calibratorstate", {}) == 1  # Off
    calibrator.put("calibratoron", {"Brightness": "255"})
    assert calibrator.get("calibratorstate", {}) == 2  # NotReady: striking
    await clock.advance(3)
    assert calibrator.get("calibratorstate", {}) == 3  # Ready: light
    calibrator.put("calibratoroff", {})
    await clock.advance(1)
    assert calibrator.get("calibratorstate", {}) == 1

    served.inject("lamp-no-strike", "1")
    calibrator.put("calibratoron", {"Brightness": "255"})
    await clock.advance(60)
    assert calibrator.get("calibratorstate", {}) == 2


async def test_the_chiller_switch_powers_it_and_reads_its_supply_and_flow() -> None:
    served, clock = site()
    chiller = served.chiller
    names = [chiller.get("getswitchname", {"Id": str(i)}) for i in range(chiller.get("maxswitch", {}))]
    assert names == ["Chiller power", "Chiller supply temperature", "Chiller coolant flow"]
    assert chiller.get("getswitchvalue", {"Id": "2"}) == 0.0  # no flow while stopped
    chiller.put("setswitch", {"Id": "0", "State": "True"})
    await clock.advance(600)
    assert chiller.get("getswitch", {"Id": "0"}) is True
    assert chiller.get("getswitchvalue", {"Id": "1"}) == pytest.approx(20.0, abs=0.2)  # at its set point
    assert chiller.get("getswitchvalue", {"Id": "2"}) == pytest.approx(3.6)
    with pytest.raises(ServedError, match=r"switch 1 \(Chiller supply temperature\) is read-only") as refused:
        chiller.put("setswitchvalue", {"Id": "1", "Value": "5"})
    assert refused.value.number == INVALID_OPERATION


async def test_a_wheel_reads_minus_one_while_it_moves_and_a_stuck_one_never_arrives() -> None:
    served, clock = site()
    wheel = served.filter
    assert wheel.get("names", {})[1] == "SDSSr_65mm"
    wheel.put("position", {"Position": "2"})
    assert wheel.get("position", {}) == -1
    await clock.advance(10)
    assert wheel.get("position", {}) == 2
    served.inject("filter-stuck", "")
    wheel.put("position", {"Position": "4"})
    await clock.advance(600)
    assert wheel.get("position", {}) == -1


async def test_abortslew_stops_the_dome_part_way() -> None:
    served, clock = site()
    served.dome.put("findhome", {})
    await clock.advance(100)
    served.dome.put("slewtoazimuth", {"Azimuth": "100"})
    await clock.advance(10)  # 4 deg/s: about 40 deg on the way
    assert served.dome.get("slewing", {}) is True
    served.dome.put("abortslew", {})
    await clock.advance(1)
    assert served.dome.get("slewing", {}) is False
    assert 30.0 < served.dome.get("azimuth", {}) < 50.0


@pytest.mark.parametrize(
    ("device", "member", "form", "number", "message"),
    [
        ("camera", "startexposure", {"Duration": "abc", "Light": "True"}, INVALID_VALUE,
         "Duration 'abc' is not a number"),
        ("camera", "startexposure", {"Light": "True"}, INVALID_VALUE, "the parameter Duration is missing"),
        ("camera", "startexposure", {"Duration": "-1", "Light": "True"}, INVALID_VALUE, "outside 0 to 3600 s"),
        ("camera", "startexposure", {"Duration": "nan", "Light": "True"}, INVALID_VALUE, "Duration must be finite"),
        ("camera", "startexposure", {"Duration": "1", "Light": "maybe"}, INVALID_VALUE, "Light 'maybe' is not True"),
        ("filterwheel", "position", {"Position": "9"}, INVALID_VALUE, "Position 9 is outside 0 to 5"),
        ("telescope", "slewtoaltazasync", {"Azimuth": "10", "Altitude": "2"}, INVALID_VALUE,
         "elevation 2 deg is beyond the limits 5 to 90 deg"),
        ("dome", "slewtoazimuth", {"Azimuth": "360"}, INVALID_VALUE, "Azimuth 360 is outside 0 to 360"),
        ("covercalibrator", "calibratoron", {"Brightness": "256"}, INVALID_VALUE, "Brightness 256 is outside 0 to 255"),
        ("camera", "pulseguide", {}, NOT_IMPLEMENTED, "camera pulseguide is not implemented"),
    ],
)  # fmt: skip
def test_a_refusal_is_ascom_s_error_naming_the_field_and_the_rule(
    device: str, member: str, form: dict[str, str], number: int, message: str
) -> None:
    served, _ = site()
    with pytest.raises(ServedError, match=message) as refused:
        served.devices[(device, 0)].put(member, form)
    assert refused.value.number == number


async def test_a_device_not_connected_says_so_and_a_busy_camera_refuses_a_second_exposure() -> None:
    clock = ManualClock()
    served = ServedSite(clock)
    with pytest.raises(ServedError, match=r"camera 0 is not connected \(cameraxsize\)") as refused:
        served.camera.get("cameraxsize", {})
    assert refused.value.number == NOT_CONNECTED
    assert served.camera.get("name", {}) == "obsq simulated camera 0"  # the common members answer regardless
    served.camera.put("connected", {"Connected": "True"})
    served.camera.put("startexposure", {"Duration": "10", "Light": "False"})
    with pytest.raises(ServedError, match=r"the camera is not idle \(CameraState 2\)"):
        served.camera.put("startexposure", {"Duration": "1", "Light": "False"})
    with pytest.raises(ServedError, match="no image is ready"):
        served.camera.image_array()
    served.inject("readout-failure", "1")
    await clock.advance(20)
    assert served.camera.get("camerastate", {}) == 5  # Error


def test_the_devices_file_names_every_served_device() -> None:
    urls = device_urls("127.0.0.1", 11111)
    assert urls["ATWhiteLight"] == {"lamp": "alpaca://127.0.0.1:11111/covercalibrator/0",
                                    "chiller": "alpaca://127.0.0.1:11111/switch/0"}  # fmt: skip
    assert set(urls) == {"ATCamera", "ATSpectrograph", "ATDome", "ATMCS", "ATWhiteLight"}
    assert devices_yaml("127.0.0.1", 11111).count("\n") == 5
    with pytest.raises(ValueError, match="chiller-alarm"):
        ServedSite(ManualClock()).inject("chiller-alarm", "")


class ScaledClock(ManualClock):
    """Virtual time at `speed` clock seconds per real second, its real clock another ManualClock."""

    def __init__(self, speed: float) -> None:
        super().__init__()
        self._speed = speed
        self.wall = ManualClock()

    @property
    def speed(self) -> float:
        return self._speed

    def monotonic(self) -> float:
        return self.wall.monotonic() * self._speed

    def unscaled(self) -> ManualClock:  # type: ignore[override]
        return self.wall


async def test_a_deadline_is_clock_time_and_only_real_work_gets_a_real_floor() -> None:
    clock = ScaledClock(600.0)
    physics, real_work = Deadline(clock, 60.0), Pace(clock, 0.2).deadline(60.0, real_work=True)
    await clock.wall.advance(0.2)  # 120 clock seconds
    assert physics.passed  # a slew or a strike: its clock time is its time
    assert not real_work.passed  # an image computed on the other side: at least 10 real seconds
    await clock.wall.advance(10.0)
    assert real_work.passed


async def test_what_an_ascom_client_sets_and_reads_before_an_exposure_is_there() -> None:
    """Found by alpyca, the ASCOM Initiative's client: subframe, binning and the capabilities a client reads."""
    served, clock = site()
    camera = served.camera
    for member in ("canabortexposure", "canstopexposure", "hasshutter"):
        assert camera.get(member, {}) is True
    assert (camera.get("maxbinx", {}), camera.get("sensortype", {})) == (1, 0)
    camera.put("binx", {"BinX": "1"})
    with pytest.raises(ServedError, match="BinX must be 1"):
        camera.put("binx", {"BinX": "2"})
    for member, value in (("startx", "100"), ("starty", "50"), ("numx", "64"), ("numy", "32")):
        camera.put(member, {member: value})
    assert (await expose(served, clock, 0.0, light=False)).shape == (32, 64)
    camera.put("numx", {"NumX": "500"})
    with pytest.raises(ServedError, match="the subframe StartX 100 NumX 500, StartY 50 NumY 32 is off the 512x512"):
        camera.put("startexposure", {"Duration": "1", "Light": "False"})


async def test_stopexposure_reads_out_what_was_exposed_and_abortexposure_nothing() -> None:
    served, clock = site()
    camera = served.camera
    camera.put("startexposure", {"Duration": "600", "Light": "False"})
    await clock.advance(30)
    camera.put("stopexposure", {})
    await clock.advance(READOUT_S + 1)
    assert camera.get("imageready", {}) is True
    assert camera.get("lastexposureduration", {}) == pytest.approx(30.0)
    camera.put("startexposure", {"Duration": "600", "Light": "False"})
    await clock.advance(30)
    camera.put("abortexposure", {})
    await clock.advance(READOUT_S + 1)
    assert camera.get("imageready", {}) is False
    assert camera.get("camerastate", {}) == 0


async def test_the_outsider_s_other_findings_are_mended() -> None:
    served, clock = site()
    with pytest.raises(ServedError, match=r"Value 5 is outside 0 to 1 \(switch 0\)"):
        served.chiller.put("setswitchvalue", {"Id": "0", "Value": "5"})
    served.mount.put("slewtoaltazasync", {"Azimuth": "300", "Altitude": "70"})  # ASCOM's 300 is the wrap's -60
    await clock.advance(200)
    assert served.mount.get("azimuth", {}) == pytest.approx(300.0)
    assert served.mount.mount.azimuth == pytest.approx(-60.0)
    served.calibrator.put("calibratoron", {"Brightness": "100"})
    await clock.advance(5)
    served.calibrator.put("calibratoroff", {})
    assert served.calibrator.get("calibratorstate", {}) == 2  # NotReady while the light lingers
    await clock.advance(2)
    assert served.calibrator.get("calibratorstate", {}) == 1
    assert served.dome.get("slaved", {}) is False
