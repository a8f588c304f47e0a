"""The flat wizard: the exposure search converging on the simulated camera, and refusing by name."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest

from obsq.csc.bus.memory import MemoryBroker
from obsq.csc.clock import ManualClock
from obsq.csc.component import Remote
from obsq.csc.reduction.flatwizard import FlatWizardError, Search, next_exposure
from obsq.csc.scriptqueue.store import MemoryQueueStore
from obsq.csc.testing import unique_root

from .test_enable_scripts import start_components
from .test_queue_inprocess import queue_rig

SEARCH = Search(target_adu=50_000.0, tolerance=0.05, t_min_s=0.5, t_max_s=60.0)


def simulate(rate: float, search: Search, first: float = 2.0, pedestal: float = 0.0) -> list[tuple[float, float]]:
    """The search against a linear detector (`rate` ADU/s, a shutter `pedestal`): the test flats it takes."""
    points = [(first, pedestal + rate * first)]
    while (t := next_exposure(search, points)) is not None:
        points.append((t, pedestal + rate * t))
        assert len(points) < 10
    return points


@pytest.mark.parametrize("rate", [900.0, 2_500.0, 11_000.0, 40_000.0])
def test_the_model_lands_on_the_target_in_a_few_tries(rate: float) -> None:
    points = simulate(rate, SEARCH)
    assert SEARCH.within(points[-1][1])
    assert len(points) <= 3


def test_a_shutter_pedestal_is_taken_up_by_the_line() -> None:
    points = simulate(2_000.0, SEARCH, pedestal=3_000.0)
    assert SEARCH.within(points[-1][1])
    assert len(points) <= 4


def test_unreachable_targets_are_named() -> None:
    with pytest.raises(FlatWizardError, match="no light: the level does not rise"):
        simulate(0.2, SEARCH)
    with pytest.raises(FlatWizardError, match=r"cannot reach the target: \d+ ADU at the maximum exposure 60 s"):
        simulate(300.0, SEARCH)
    with pytest.raises(FlatWizardError, match=r"too bright: .* at the minimum exposure 0\.5 s"):
        simulate(400_000.0, SEARCH, first=1.0)


def wizard_block(filters: list[str], **options: object) -> str:
    parameters = {"filters": filters, "grating": "empty_1", **options}
    script = {"name": "auxtel/calibrations/flat_wizard.py", "standard": True, "parameters": parameters}
    return json.dumps({"name": "flat wizard", "program": "BLOCK-T50", "scripts": [script]})


async def test_the_wizard_trains_filters_at_two_lamp_powers_and_refuses_a_misaligned_dome(tmp_path: Path) -> None:
    broker, clock, root = MemoryBroker(), ManualClock(), unique_root()
    async with contextlib.AsyncExitStack() as stack:
        await start_components(stack, broker, clock, root, tmp_path,
                               "ATWhiteLight", "ATSpectrograph", "ATDome", "ATMCS", "ATCamera")  # fmt: skip
        queue = await stack.enter_async_context(queue_rig(broker, clock, MemoryQueueStore(), root))
        remotes = {}
        for name in ("ATWhiteLight", "ATSpectrograph", "ATDome", "ATMCS", "ATCamera"):
            remotes[name] = await stack.enter_async_context(Remote(queue.rig.remote_bus, name, clock=clock, root=root))
            for command in ("start", "enable"):
                await queue.rig.run(remotes[name].command(command))
        lamp, dome, mount = remotes["ATWhiteLight"], remotes["ATDome"], remotes["ATMCS"]
        for command in ("startChiller", "openShutter"):
            await queue.rig.run(lamp.command(command))
        await queue.rig.run(dome.command("homeAzimuth"))
        await queue.rig.run(dome.command("moveAzimuth", {"azimuth": 3.0}))
        await queue.rig.run(mount.command("moveToPosition", {"azimuth": 188.7, "elevation": 39.0}))
        table = tmp_path / "flats" / "trained.json"
        trained: dict[int, dict[str, float]] = {}
        for power in (900.0, 1200.0):
            await queue.rig.run(lamp.command("turnLampOn", {"power": power}))
            await clock.advance(1000)  # past the 900 s warm-up
            ack = await queue.rig.command("addBlock", {"id": wizard_block(["SDSSr_65mm", "SDSSg_65mm"])})
            (index,) = json.loads(ack.result)
            await queue.until(lambda i=index: queue.items().get(i, {}).get("area") == "history")
            assert queue.items()[index]["state"] == "DONE", queue.items()[index]
            entries = json.loads(table.read_text())
            trained[int(power)] = {k: v["exposure_s"] for k, v in entries.items()}
            for entry in entries.values():
                assert abs(entry["level_adu"] - entry["target_adu"]) <= 0.05 * entry["target_adu"]
                assert entry["tries"] <= 4
            await queue.rig.run(lamp.command("turnLampOff", {"force": True}))
            await clock.advance(1000)  # the cool-down
        for key in ("SDSSr_65mm~empty_1", "SDSSg_65mm~empty_1"):
            assert trained[1200][key] < trained[900][key]  # more light, shorter flats
        assert trained[900]["SDSSg_65mm~empty_1"] != trained[900]["SDSSr_65mm~empty_1"]  # filters differ

        await queue.rig.run(lamp.command("turnLampOn", {"power": 900.0}))
        await clock.advance(1000)
        await queue.rig.run(dome.command("moveAzimuth", {"azimuth": 8.0}))  # off the screen
        ack = await queue.rig.command("addBlock", {"id": wizard_block(["SDSSr_65mm"])})
        (index,) = json.loads(ack.result)
        await queue.until(lambda: queue.items().get(index, {}).get("area") == "current")
        await queue.until(lambda: queue.items()[index]["state"] == "FAILED")
        assert queue.items()[index]["reason"].startswith("SDSSr_65mm: the light cannot reach the target")
        # the table is what flats by cadence look their exposures up in
        from obsq.csc.scheduler.flats import key_of, trained_from

        exposures = trained_from(json.loads(table.read_text()))
        params = {"filter": "SDSSr_65mm", "grating": "empty_1", "gain": "", "offset": "", "binning": "1x1"}
        assert exposures[key_of(params)] == trained[1200]["SDSSr_65mm~empty_1"]
