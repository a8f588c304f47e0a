"""Rubin's AuxTel block library (tests/data/rubin-auxtel-blocks) on obsq: accepted as they are, and run."""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path

import pytest
from astropy.io import fits

from obsq.csc.acquired import AcquiredImages
from obsq.csc.app.queue import check_block
from obsq.csc.bus.memory import MemoryBroker
from obsq.csc.clock import ManualClock
from obsq.csc.component import Remote
from obsq.csc.scriptqueue.blocks import block_folders, read_block
from obsq.csc.scriptqueue.store import MemoryQueueStore
from obsq.csc.testing import unique_root
from obsq.scripts.acquisition import median_electrons, offset_to_centre

from .test_enable_scripts import start_components
from .test_queue_inprocess import queue_rig

RUBIN = Path(__file__).resolve().parents[1] / "data" / "rubin-auxtel-blocks"
CALIBRATION = ("ATWhiteLight", "ATDome", "ATMCS", "ATCamera", "ATSpectrograph")
#: What a refused file of Rubin's still lacks here (named in the refusal).
STILL_MISSING = {
    "ops-cwfs.json": "auxtel/latiss_wep_align.py",  # wavefront sensing: no ATAOS, no hexapod here
    "test-anytime-survey.json": "field 'exp_times': [] should be non-empty",  # a Scheduler target's, none given
}
HD104304 = '{name: HD104304, ra: "12:0:44.4601", dec: "-10:26:46.0670", band_filter: r, exp_times: [30, 30]}'


def test_rubins_auxtel_files_are_accepted_or_what_is_missing_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    files = sorted(RUBIN.glob("*.json"))
    assert len(files) == 29  # the folder's 32, less the three links to main-telescope blocks
    refused = {}
    for file in files:
        if check_block(str(file), []) != 0:
            refused[file.name] = capsys.readouterr().err
    capsys.readouterr()
    assert set(refused) == set(STILL_MISSING)
    for name, refusal in refused.items():
        assert STILL_MISSING[name] in refusal, (name, refusal)
    assert len(files) - len(refused) == 27
    # the block Rubin's Scheduler fills from a target is accepted with one
    assert check_block(str(RUBIN / "test-anytime-survey.json"), [], HD104304) == 0


async def run_blocks(tmp_path: Path, *files: Path, limit_s: float = 40_000.0) -> list[dict[str, object]]:
    """Rubin's BLOCK-309 (less OCPS), then each file, on the simulated observatory; the queue's items of the files."""
    broker, clock, root = MemoryBroker(), ManualClock(), unique_root()
    async with contextlib.AsyncExitStack() as stack:
        await start_components(stack, broker, clock, root, tmp_path, *CALIBRATION)
        queue = await stack.enter_async_context(queue_rig(broker, clock, MemoryQueueStore(), root))
        setup, _ = read_block("BLOCK-309", block_folders())  # Rubin's file, shipped verbatim
        # its OCPS:1 (the reduction, not needed for the images) is not part of this rig
        setup["scripts"] = [s for s in setup["scripts"] if "OCPS:1" not in json.dumps(s)]
        setup["scripts"].insert(
            0,
            {
                "name": "set_summary_state.py",
                "standard": True,
                "parameters": {"data": [[n, "ENABLED"] for n in CALIBRATION[1:]]},
            },
        )
        indices = [
            json.loads((await queue.rig.command("addBlock", {"id": text})).result)
            for text in (json.dumps(setup), *(f.read_text() for f in files))
        ]
        everything = [i for block in indices for i in block]
        await queue.until(lambda: all(queue.items().get(i, {}).get("area") == "history" for i in everything), limit_s)
        return [queue.items()[i] for block in indices[1:] for i in block]


async def test_rubins_ptc_and_wavelength_scan_blocks_run_to_done(tmp_path: Path) -> None:
    """BLOCK-271_1 (biases, darks, the ptc_1 sequence) and BLOCK-294 (scan_g, scan_r) after BLOCK-309."""
    items = await run_blocks(tmp_path, RUBIN / "BLOCK-271_1.json", RUBIN / "block-294.json")
    assert [item["state"] for item in items] == ["DONE"] * 5, [(i["state"], i["reason"]) for i in items]
    # ptc_1: 68 flats; scan_g and scan_r: 51 wavelengths, each with the filter and without
    assert (len(headers(tmp_path, "BIAS")), len(headers(tmp_path, "DARK"))) == (3, 3)
    flats = headers(tmp_path, "FLAT")
    assert len(flats) == 68 + 2 * 2 * 51
    assert {h["FILTER"] for _, h in flats} == {"SDSSr_65mm", "SDSSg_65mm", "empty_1"}


#: TAI when the Sun, setting behind Cerro Pachón on 2027-01-15, is 0.6 deg below the horizon.
JUST_AFTER_SUNSET_TAI = 1_800_056_880.0


async def test_rubins_twilight_flats_find_the_sky_level_as_the_sun_sets(tmp_path: Path) -> None:
    """BLOCK-T190 asked for 30 flats: the dome opened, each flat scaled to 15,000 e- as the sky fades, then darks."""
    broker, clock, root = MemoryBroker(), ManualClock(JUST_AFTER_SUNSET_TAI), unique_root()
    async with contextlib.AsyncExitStack() as stack:
        await start_components(stack, broker, clock, root, tmp_path, *CALIBRATION[1:])
        queue = await stack.enter_async_context(queue_rig(broker, clock, MemoryQueueStore(), root))
        opened = {"name": "imaging", "program": "BLOCK-T9", "scripts": [
            {"name": "set_summary_state.py", "standard": True,
             "parameters": {"data": [[n, "ENABLED"] for n in CALIBRATION[1:]]}},
            {"name": "auxtel/atdome/home_dome.py", "standard": True, "parameters": {}},
            {"name": "auxtel/atdome/open_dome.py", "standard": True, "parameters": {}}]}  # fmt: skip
        twilight = {"id": (RUBIN / "BLOCK-T190-twilight_flats.json").read_text(), "override": "run_n_flats: 30"}
        indices = [json.loads((await queue.rig.command("addBlock", data)).result)
                   for data in ({"id": json.dumps(opened)}, twilight)]  # fmt: skip
        everything = [i for block in indices for i in block]
        await queue.until(lambda: all(queue.items().get(i, {}).get("area") == "history" for i in everything))
        assert [queue.items()[i]["state"] for i in everything] == ["DONE"] * 4, [queue.items()[i] for i in everything]
    flats = headers(tmp_path, "SFLAT")
    assert len(headers(tmp_path, "DARK")) == 40
    assert len(flats) >= 31  # the measuring flat and the 30 asked for
    levels = [median_electrons(str(f)) for f, _ in flats[1:]]
    times = [h["EXPTIME"] for _, h in flats[1:]]
    assert all(10_000 < level < 22_000 for level in levels), list(zip(times, levels, strict=True))
    assert times[-1] > 1.2 * times[0]  # the sky faded: longer exposures for the same level


#: TAI of a night of 2027-01-15 at Cerro Pachón: the Sun 37 deg down, HD 104304 at elevation 40 deg in the east.
NIGHT_TAI = 1_800_078_480.0
OPEN_DOME = [
    {"name": "set_summary_state.py", "standard": True,
     "parameters": {"data": [[n, "ENABLED"] for n in CALIBRATION[1:]]}},
    {"name": "auxtel/atdome/home_dome.py", "standard": True, "parameters": {}},
    {"name": "auxtel/atdome/open_dome.py", "standard": True, "parameters": {}},
]  # fmt: skip


async def run_at(tmp_path: Path, tai: float, *blocks: dict[str, str]) -> list[dict[str, object]]:
    """The dome opened, then each block (addBlock fields), on the simulated observatory at `tai`; their items."""
    broker, clock, root = MemoryBroker(), ManualClock(tai), unique_root()
    async with contextlib.AsyncExitStack() as stack:
        await start_components(stack, broker, clock, root, tmp_path, *CALIBRATION[1:])
        queue = await stack.enter_async_context(queue_rig(broker, clock, MemoryQueueStore(), root))
        opened = {"id": json.dumps({"name": "open", "program": "BLOCK-T9", "scripts": OPEN_DOME})}
        indices = [json.loads((await queue.rig.command("addBlock", data)).result) for data in (opened, *blocks)]
        everything = [i for block in indices for i in block]
        await queue.until(lambda: all(queue.items().get(i, {}).get("area") == "history" for i in everything))
        return [queue.items()[i] for i in everything]


def headers(tmp_path: Path, imgtype: str) -> list[tuple[Path, fits.Header]]:
    """The images of a type as the acquired-images registry has them (in order), with their files' headers."""
    rows = AcquiredImages(tmp_path / "registry.sqlite3").images(imgtype=imgtype)
    assert len(rows) == sum(fits.getheader(f)["IMGTYPE"] == imgtype for f in (tmp_path / "raw").rglob("*.fits"))
    return [(Path(row.path), fits.getheader(row.path)) for row in rows]


async def test_rubins_t40_block_acquires_its_star_and_takes_the_offset_sequences(tmp_path: Path) -> None:
    """BLOCK-T40 HD104304: slew, the star centred from acquisition images, then 17 sequences at 16 x offsets."""
    block = {"id": (RUBIN / "BLOCK-T40_HD104304.json").read_text()}
    items = await run_at(tmp_path, NIGHT_TAI, block)
    assert [item["state"] for item in items] == ["DONE"] * len(items), [(i["state"], i["reason"]) for i in items]
    acquisition = headers(tmp_path, "ACQ")
    first, last = (offset_to_centre(str(f)) for f, _ in (acquisition[0], acquisition[-1]))
    assert first is not None
    assert last is not None
    # the mount points 12" east in azimuth and 8" low: the star is seen 12" west and 8" up of the centre
    assert first == pytest.approx((-12.0, 8.0), abs=0.5)
    assert math.hypot(*last) < 0.5  # centred, well within Rubin's 5"
    objects = headers(tmp_path, "OBJECT")
    assert len(objects) == 17 * 9
    assert {h["FILTER"] for _, h in objects} == {"empty_1", "BG40_65mm_1", "OG550_65mm_1"}


async def test_rubins_survey_spec_block_runs_on_its_target(tmp_path: Path) -> None:
    """survey-spec with HD104304 as the Scheduler's target: acquired, then sequences at x offsets of 0, -50, 100"."""
    items = await run_at(tmp_path, NIGHT_TAI, {"id": (RUBIN / "survey-spec.json").read_text(), "target": HD104304})
    assert [item["state"] for item in items] == ["DONE"] * len(items), [(i["state"], i["reason"]) for i in items]
    acquisition = headers(tmp_path, "ACQ")
    centred = offset_to_centre(str(acquisition[-1][0]))
    assert centred is not None
    assert math.hypot(*centred) < 0.5
    objects = headers(tmp_path, "OBJECT")
    assert len(objects) == 3 + 3  # the acquisition's sequence, then one image at each of three offsets
    assert {h["PROGRAM"] for _, h in objects} == {"spec-survey"}
    assert [h["GRATING"] for _, h in objects][3:] == ["blue300lpmm_qn1"] * 3


async def test_rubins_pointing_correction_absorbs_the_mounts_error(tmp_path: Path) -> None:
    """BLOCK-273 with a target: correct_pointing centres a star and absorbs what it took, the mount's error."""
    broker, clock, root = MemoryBroker(), ManualClock(NIGHT_TAI), unique_root()
    async with contextlib.AsyncExitStack() as stack:
        await start_components(stack, broker, clock, root, tmp_path, *CALIBRATION[1:])
        queue = await stack.enter_async_context(queue_rig(broker, clock, MemoryQueueStore(), root))
        opened = {"id": json.dumps({"name": "open", "program": "BLOCK-T9", "scripts": OPEN_DOME})}
        block = {"id": (RUBIN / "BLOCK-273.json").read_text(), "target": HD104304}
        indices = [json.loads((await queue.rig.command("addBlock", data)).result) for data in (opened, block)]
        everything = [i for block in indices for i in block]
        await queue.until(lambda: all(queue.items().get(i, {}).get("area") == "history" for i in everything))
        assert [queue.items()[i]["state"] for i in everything] == ["DONE"] * 5
        async with Remote(queue.rig.remote_bus, "ATMCS", clock=clock, root=root) as mount:
            offsets = await mount.event("pointingOffsets").aget(timeout_s=1)
    # the simulated mount points 12" east in azimuth and 8" low: the correction undoes it, within the 1" tolerance
    assert math.hypot(offsets["absorbedAzimuth"] + 12.0, offsets["absorbedElevation"] - 8.0) < 1.0
    assert len(headers(tmp_path, "OBJECT")) == 4


async def test_rubins_anytime_survey_block_tracks_its_target_and_images_it(tmp_path: Path) -> None:
    items = await run_at(tmp_path, NIGHT_TAI, {"id": (RUBIN / "test-anytime-survey.json").read_text(),
                                               "target": HD104304})  # fmt: skip
    assert [item["state"] for item in items] == ["DONE"] * len(items), [(i["state"], i["reason"]) for i in items]
    objects = headers(tmp_path, "OBJECT")
    assert [(h["FILTER"], h["EXPTIME"]) for _, h in objects] == [("SDSSr_65mm", 30.0)] * 2
