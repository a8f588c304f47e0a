"""ATCamera on virtual time with real FITS files: the pixel model, headers, registry, rules."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits
from astropy.stats import sigma_clipped_stats

from obsq.csc.acquired import AcquiredImages
from obsq.csc.atcamera.csc import ATCameraCsc
from obsq.csc.atcamera.illumination import ObservatoryState, flat_flux_e_s
from obsq.csc.atcamera.model import GEOMETRIES, DetectorModel
from obsq.csc.atcamera.sim import SimCamera, StaticObservatory
from obsq.csc.component import AckError
from obsq.csc.core.errors import ValidationError
from obsq.csc.core.states import State
from obsq.csc.testing import Rig, check_state_conformance, component_rig

FLAT_POSITION = ObservatoryState(
    now_tai=0.0,
    lamp_basic_state=2,
    lamp_power_w=900.0,
    lamp_warmup_end_tai=0.0,
    lamp_shutter=2,
    filter="SDSSr_65mm",
    disperser="empty_1",
    dome_azimuth_true=3.0,
    mount_azimuth=188.7,
    mount_elevation=39.0,
)


def make(data_dir: Path, observatory: StaticObservatory, **kwargs: object) -> ATCameraCsc:
    return ATCameraCsc(driver=SimCamera(observatory, kwargs["clock"]), data_dir=data_dir, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def observatory() -> StaticObservatory:
    return StaticObservatory(FLAT_POSITION)


@pytest.fixture
async def rig(tmp_path: Path, observatory: StaticObservatory) -> AsyncIterator[Rig]:
    async with component_rig(functools.partial(make, tmp_path, observatory), "ATCamera") as rig:
        yield rig


def last_file(rig: Rig) -> Path:
    url = rig.remote.event("largeFileObjectAvailable").get()["url"]
    return Path(url.removeprefix("file://"))


def bias_subtracted(hdu: fits.ImageHDU, nx: int, ny: int) -> np.ndarray:
    overscan = np.median(hdu.data[:ny, nx:])
    return hdu.data[:ny, :nx].astype(np.float64) - overscan


async def test_state_conformance(rig: Rig) -> None:
    await check_state_conformance(rig.csc, rig.remote)


async def test_bias_level_and_noise_match_the_model_within_2_percent(rig: Rig) -> None:
    await rig.enable()
    await rig.command("takeImages", {"numImages": 1, "expTime": 0, "shutter": False, "imageType": "BIAS"})
    assert isinstance(rig.csc, ATCameraCsc)
    detector = rig.csc.driver.detector
    g = detector.geometry
    with fits.open(last_file(rig)) as hdus:
        assert len(hdus) == 1 + g.n_amps
        for i, amp in enumerate(detector.amplifiers):
            mean, _, std = sigma_clipped_stats(hdus[i + 1].data[: g.ny, : g.nx], sigma=5)
            assert mean == pytest.approx(amp.bias_adu, rel=0.02)
            assert std == pytest.approx(amp.read_noise_e / amp.gain_e_per_adu, rel=0.02)


async def test_six_second_flat_matches_the_model_within_5_percent(rig: Rig) -> None:
    await rig.enable()
    await rig.command("takeImages", {"numImages": 1, "expTime": 6, "imageType": "FLAT", "groupId": "g1"})
    assert isinstance(rig.csc, ATCameraCsc)
    detector = rig.csc.driver.detector
    g = detector.geometry
    expected = detector.expected_signal_adu(flat_flux_e_s(FLAT_POSITION), 6.0)
    with fits.open(last_file(rig)) as hdus:
        header = hdus[0].header
        assert (header["IMGTYPE"], header["FILTER"], header["GRATING"], header["EXPTIME"]) == (
            "FLAT",
            "SDSSr_65mm",
            "empty_1",
            6,
        )
        assert header["GROUPID"] == "g1"
        for i in range(g.n_amps):
            mean, _, _ = sigma_clipped_stats(bias_subtracted(hdus[i + 1], g.nx, g.ny), sigma=3)
            assert mean == pytest.approx(expected[i], rel=0.05)
            assert 24_000 < mean < 31_000  # the LATISS procedure: a standard 6 s SDSSr flat
            assert hdus[i + 1].header["DATASEC"] == g.datasec()


async def test_misaligned_dome_flat_is_below_10000_adu(rig: Rig, observatory: StaticObservatory) -> None:
    observatory.state = replace(FLAT_POSITION, dome_azimuth_true=6.0)
    await rig.enable()
    await rig.command("takeImages", {"numImages": 1, "expTime": 6, "imageType": "FLAT"})
    g = GEOMETRIES["small"]
    with fits.open(last_file(rig)) as hdus:
        levels = [sigma_clipped_stats(bias_subtracted(hdus[i + 1], g.nx, g.ny))[0] for i in range(g.n_amps)]
    assert max(levels) < 10_000


def test_alignment_boundary() -> None:
    ok = flat_flux_e_s(replace(FLAT_POSITION, dome_azimuth_true=3.0 + 1.4)) * 6
    off = flat_flux_e_s(replace(FLAT_POSITION, dome_azimuth_true=3.0 + 1.6)) * 6
    assert ok > 10_000 > off


def test_lamp_output_ramps_through_the_warm_up() -> None:
    warming = replace(FLAT_POSITION, lamp_basic_state=4, lamp_warmup_end_tai=450.0, now_tai=0.0)
    assert flat_flux_e_s(warming) == pytest.approx(flat_flux_e_s(FLAT_POSITION) / 2)
    assert flat_flux_e_s(replace(FLAT_POSITION, lamp_basic_state=1)) == 0.0
    assert flat_flux_e_s(replace(FLAT_POSITION, lamp_shutter=1)) == 0.0


async def test_files_registry_and_events(rig: Rig, tmp_path: Path) -> None:
    await rig.enable()
    starts = rig.remote.event("startIntegration")
    ack = await rig.command(
        "takeImages",
        {
            "numImages": 3,
            "expTime": 2,
            "shutter": False,
            "imageType": "DARK",
            "program": "BLOCK-295",
            "reason": "weekly",
        },
    )
    assert ack.result.startswith("took 3 DARK: AT_O_")
    registry = AcquiredImages(tmp_path / "registry.sqlite3")
    images = registry.images(imgtype="DARK")
    assert [image.seqnum for image in images] == [1, 2, 3]
    assert all(Path(image.path).is_file() for image in images)
    assert all(Path(image.path).parent == tmp_path / "raw" / str(image.dayobs) for image in images)
    assert {image.program for image in images} == {"BLOCK-295"}
    assert images[0].darktime == pytest.approx(4.0)  # exposure + readout
    assert not list((tmp_path / "raw").rglob(".*.tmp"))
    assert (await starts.aget(timeout_s=0))["imagesInSequence"] == 3
    with fits.open(images[0].path) as hdus:
        assert hdus[0].header["OBSID"] == images[0].obsid
        assert hdus[0].header["DAYOBS"] == images[0].dayobs
        assert hdus[0].header["REASON"] == "weekly"


SEQUENCE_EVENTS = (
    "notReadyToTakeImage", "startIntegration", "startShutterOpen", "endShutterOpen", "startShutterClose",
    "endShutterClose", "endTakeImage", "startReadout", "imageReadoutParameters", "endReadout", "imageStored",
    "largeFileObjectAvailable", "endOfImageTelemetry", "readyToTakeImage",
)  # fmt: skip


async def test_an_image_sequence_publishes_rubins_camera_events_in_order(rig: Rig) -> None:
    await rig.enable()
    seen: list[tuple[str, dict[str, Any]]] = []
    for name in SEQUENCE_EVENTS:
        rig.remote.event(name).callback = lambda envelope, name=name: seen.append((name, envelope.data))
    t0 = rig.clock.tai()
    key_value_map = "imageType: FLAT, groupId: 2026-12-02T14:00:00.000, reason: daily_PTC, filterBand: r"
    await rig.command("takeImages", {"numImages": 2, "expTime": 6, "shutter": True, "keyValueMap": key_value_map})
    one_image = list(SEQUENCE_EVENTS[1:-1])
    assert [name for name, _ in seen] == ["notReadyToTakeImage", *one_image, *one_image, "readyToTakeImage"]
    data = dict(seen)  # the last of each: the second image
    end = data["endOfImageTelemetry"]
    assert (end["imageIndex"], end["imagesInSequence"], end["imageSource"], end["imageController"]) == (2, 2, "AT", "O")
    assert end["imageName"] == f"AT_O_{end['imageDate']}_{end['imageNumber']:06d}"
    assert end["timestampDateEnd"] - end["timestampDateObs"] == pytest.approx(6.0)
    assert end["measuredShutterOpenTime"] == 6.0
    assert end["darkTime"] == pytest.approx(8.0)  # exposure and readout
    assert end["additionalKeys"] == "imageType:groupId:reason:filterBand"
    assert end["additionalValues"] == "FLAT:2026-12-02T14\\:00\\:00.000:daily_PTC:r"  # a ':' in a value escaped
    shutter = [data[name]["timestampTransition"] - t0 for name in ("startShutterOpen", "startShutterClose")]
    assert shutter[1] - shutter[0] == pytest.approx(6.0)
    readout = data["imageReadoutParameters"]
    assert (readout["ccdType"], readout["readRows"], readout["readCols"]) == (2, 256, 256)  # ITL, small geometry
    await rig.command("takeImages", {"numImages": 1, "expTime": 0, "shutter": False, "imageType": "BIAS"})
    assert "startShutterOpen" not in [name for name, _ in seen[len(one_image) * 2 + 2 :]]  # a BIAS: shutter closed


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"numImages": 1, "expTime": 1, "shutter": False, "imageType": "BIAS"}, "a BIAS needs expTime 0"),
        ({"numImages": 1, "expTime": 0, "imageType": "FLAT"}, "a FLAT needs expTime > 0"),
        ({"numImages": 1, "expTime": 5, "shutter": True, "imageType": "DARK"}, "a DARK needs the shutter closed"),
    ],
)
async def test_image_type_rules(rig: Rig, data: dict[str, object], message: str) -> None:
    await rig.enable()
    with pytest.raises(AckError, match=message):
        await rig.command("takeImages", data)
    assert rig.csc.summary_state == State.ENABLED


async def test_negative_exposure_and_unknown_type_are_refused(rig: Rig) -> None:
    await rig.enable()
    with pytest.raises(ValidationError, match="'expTime': -1 is less than the minimum of 0"):
        await rig.remote.command("takeImages", {"numImages": 1, "expTime": -1, "imageType": "FLAT"})
    with pytest.raises(ValidationError, match="'imageType': 'SKY' is not one of"):
        await rig.remote.command("takeImages", {"numImages": 1, "expTime": 1, "imageType": "SKY"})


async def test_readout_failure_faults(rig: Rig, tmp_path: Path) -> None:
    assert isinstance(rig.csc, ATCameraCsc)
    rig.csc.driver.fail_next_readouts(1)
    await rig.enable()
    with pytest.raises(AckError, match="readout failed"):
        await rig.command("takeImages", {"numImages": 2, "expTime": 0, "shutter": False, "imageType": "BIAS"})
    assert rig.csc.summary_state == State.FAULT
    assert AcquiredImages(tmp_path / "registry.sqlite3").images() == []


def test_exposures_are_reproducible_and_darks_have_cosmic_rays_and_hot_pixels() -> None:
    detector = DetectorModel(GEOMETRIES["small"], seed=7)
    a = detector.expose(1, 0.0, 0.0, 300.0)
    b = detector.expose(1, 0.0, 0.0, 300.0)
    c = detector.expose(2, 0.0, 0.0, 300.0)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], c[0])
    g = detector.geometry
    amp = detector.amplifiers[0]
    signal = (a[0][: g.ny, : g.nx] - amp.bias_adu) * amp.gain_e_per_adu
    assert (signal > 400).sum() > 10  # hot pixels and cosmic-ray hits stand out of a 300 s dark


def test_rubins_key_value_map_is_read_and_a_bad_one_refused_by_name() -> None:
    from obsq.csc.atcamera.csc import check_request
    from obsq.csc.core.errors import ExpectedError

    base = {"numImages": 1, "expTime": 2.0, "shutter": True, "keyValueMap": "", "obsNote": ""}
    request = check_request(base | {"keyValueMap": "imageType: sflat, groupId: g1, reason: r, program: p",
                                    "obsNote": "n"})  # fmt: skip
    assert (request.image_type, request.group_id, request.reason, request.program, request.note) == (
        "SFLAT", "g1", "r", "p", "n"
    )  # fmt: skip
    assert check_request(base | {"imageType": "FLAT", "keyValueMap": "imageType: BIAS"}).image_type == "FLAT"
    for kvm, rule in (("imageType FLAT", "is not 'key: value'"), (": x", "is not 'key: value'"),
                      ("groupId: g", "no image type"), ("imageType: SELFIE", "is not one of BIAS")):  # fmt: skip
        with pytest.raises(ExpectedError, match=rule):
            check_request(base | {"keyValueMap": kvm})
