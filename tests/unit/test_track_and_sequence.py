"""Rubin's track_target and latiss_take_sequence on the simulated observatory, in blocks as Rubin's use them."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import pytest

from obsq.csc.bus.memory import MemoryBroker
from obsq.csc.clock import ManualClock
from obsq.csc.component import AckError, Remote
from obsq.csc.scriptqueue.store import MemoryQueueStore
from obsq.csc.testing import unique_root

from .test_enable_scripts import start_components
from .test_queue_inprocess import queue_rig

COMPONENTS = ("ATDome", "ATMCS", "ATCamera", "ATSpectrograph")
ENABLE = {"name": "set_summary_state.py", "standard": True,
          "parameters": {"data": [[name, "ENABLED"] for name in COMPONENTS]}}  # fmt: skip
HOME = {"name": "auxtel/atdome/home_dome.py", "standard": True, "parameters": {}}


def block(*scripts: dict[str, Any]) -> str:
    return json.dumps({"name": "imaging", "program": "BLOCK-T9", "scripts": list(scripts)})


def track(**parameters: Any) -> dict[str, Any]:
    return {"name": "auxtel/track_target.py", "standard": True, "parameters": parameters}


def sequence(**parameters: Any) -> dict[str, Any]:
    return {"name": "auxtel/latiss_take_sequence.py", "standard": True,
            "parameters": {"program": "BLOCK-T9", "reason": "imaging"} | parameters}  # fmt: skip


async def test_track_a_circumpolar_star_and_take_a_sequence(tmp_path: Path) -> None:
    """Dec -89 is always up from Cerro Pachón, due south at ~29-31 deg: the mount and dome go there, then two images."""
    broker, clock, root = MemoryBroker(), ManualClock(), unique_root()
    async with contextlib.AsyncExitStack() as stack:
        await start_components(stack, broker, clock, root, tmp_path, *COMPONENTS)
        queue = await stack.enter_async_context(queue_rig(broker, clock, MemoryQueueStore(), root))
        seq = sequence(filter_sequence=["SDSSr_65mm", "SDSSg_65mm"], exposure_time_sequence=[1.0, 2.0],
                       grating_sequence="empty_1", ra="6:00:00", dec=-89.0, rot_sky=0.0)  # fmt: skip
        data = block(ENABLE, HOME, track(slew_icrs={"ra": "6:00:00", "dec": -89.0}, target_name="south"), seq)
        indices = json.loads((await queue.rig.command("addBlock", {"id": data})).result)
        await queue.until(lambda: all(queue.items().get(i, {}).get("area") == "history" for i in indices))
        assert [queue.items()[i]["state"] for i in indices] == ["DONE"] * 4, [queue.items()[i] for i in indices]
        assert (queue.items()[indices[-1]]["done"], queue.items()[indices[-1]]["total"]) == (2, 2)
        async with Remote(queue.rig.remote_bus, "ATMCS", clock=clock, root=root) as mount:
            where = await mount.event("mountPosition").aget(timeout_s=1)
            assert 28.0 < where["elevation"] < 32.0
            assert 177.0 < where["azimuth"] % 360.0 < 183.0  # the mount takes the turn nearest where it was
            assert (await mount.event("atMountState").aget(timeout_s=1))["state"] == 9  # still tracking
        async with Remote(queue.rig.remote_bus, "ATDome", clock=clock, root=root) as dome:
            commanded = await dome.event("azimuthCommandedState").aget(timeout_s=1)
            assert commanded["azimuth"] == pytest.approx(where["azimuth"] % 360.0, abs=0.5)  # sent before the slew
        files = sorted((tmp_path / "raw").rglob("*.fits"))
        assert len(files) == 2


async def test_a_sequence_needs_tracking_and_what_is_not_here_is_named(tmp_path: Path) -> None:
    broker, clock, root = MemoryBroker(), ManualClock(), unique_root()
    async with contextlib.AsyncExitStack() as stack:
        await start_components(stack, broker, clock, root, tmp_path, *COMPONENTS)
        queue = await stack.enter_async_context(queue_rig(broker, clock, MemoryQueueStore(), root))
        (enable,) = json.loads((await queue.rig.command("addBlock", {"id": block(ENABLE)})).result)
        await queue.until(lambda: queue.items().get(enable, {}).get("state") == "DONE")
        (index,) = json.loads((await queue.rig.command("addBlock", {"id": block(sequence())})).result)
        await queue.until(lambda: queue.items().get(index, {}).get("state") == "FAILED")  # current, the queue paused
        assert "ATMCS is not tracking" in queue.items()[index]["reason"]
        for parameters, message in (
            ({"find_target": {"az": 120.0, "el": 60.0, "mag_limit": 8.0}}, "find_target needs a star catalog"),
            ({"slew_planet": {"planet_name": "MARS"}}, "slew_planet needs ephemerides"),
            ({"target_name": "HD 104304"}, "a target by name alone needs a star catalog"),
            ({"track_azel": {"az": 10.0, "el": 50.0}, "rot_value": 30.0}, "LATISS here has no rotator"),
            ({"slew_icrs": {"ra": "25:00:00", "dec": 0.0}}, "slew_icrs.ra: .25:00:00. is not an angle"),
        ):
            with pytest.raises(AckError, match=message):
                await queue.rig.command("addBlock", {"id": block(track(**parameters))})
