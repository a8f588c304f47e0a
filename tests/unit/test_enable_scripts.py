"""enable_atcs and enable_latiss take Rubin's configurations: a key per configurable component, and ignore."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest

from obsq.csc.bus.memory import MemoryBroker
from obsq.csc.clock import ManualClock
from obsq.csc.component import AckError, Remote
from obsq.csc.compose import build_component
from obsq.csc.core.states import State
from obsq.csc.scriptqueue.store import MemoryQueueStore
from obsq.csc.testing import unique_root

from .test_queue_inprocess import HEARTBEAT_S, queue_rig


async def start_components(
    stack: contextlib.AsyncExitStack, broker: MemoryBroker, clock: ManualClock, root: str, data_dir: Path, *names: str
) -> None:
    """The named simulated components on the memory bus, in STANDBY, closed with `stack`."""
    common = {"clock": clock, "root": root, "heartbeat_s": HEARTBEAT_S, "simulate": True, "inject": [],
              "data_dir": data_dir, "initial_state": State.STANDBY, "index": 0}  # fmt: skip
    for name in names:
        csc = build_component(name, bus=broker.client(name), **common)
        await csc.bus.start()
        stack.push_async_callback(csc.bus.close)
        await stack.enter_async_context(csc)


def block(parameters: dict[str, object]) -> str:
    return json.dumps({"name": "enable", "program": "BLOCK-T3", "scripts": [
        {"name": "auxtel/enable_atcs.py", "standard": True, "parameters": parameters}]})  # fmt: skip


async def test_rubins_enable_atcs_configuration_enables_what_is_here(tmp_path: Path) -> None:
    broker, clock, root = MemoryBroker(), ManualClock(), unique_root()
    async with contextlib.AsyncExitStack() as stack:
        await start_components(stack, broker, clock, root, tmp_path, "ATDome", "ATMCS")
        queue = await stack.enter_async_context(queue_rig(broker, clock, MemoryQueueStore(), root))
        rubin = {"atdome": "", "ataos": "ataos_config.yaml", "atdometrajectory": None, "ignore": ["athexapod"]}
        (index,) = json.loads((await queue.rig.command("addBlock", {"id": block(rubin)})).result)
        await queue.until(lambda: queue.items().get(index, {}).get("area") == "history")
        assert queue.items()[index]["state"] == "DONE", queue.items()[index]
        for name in ("ATDome", "ATMCS"):
            async with Remote(queue.rig.remote_bus, name, clock=clock, root=root) as remote:
                assert (await remote.event("summaryState").aget(timeout_s=1))["summaryState"] == State.ENABLED
        with pytest.raises(AckError, match=r"ignore: atfoo not in the group \(atmcs, atptg, ataos"):
            await queue.rig.command("addBlock", {"id": block({"ignore": ["atfoo"]})})
        with pytest.raises(AckError, match="overrides"):  # obsq's former key is not Rubin's: refused by name
            await queue.rig.command("addBlock", {"id": block({"overrides": {"ATDome": ""}})})


async def test_set_summary_state_names_and_skips_what_is_not_here(tmp_path: Path) -> None:
    """Rubin's blocks list ESS:201 and the like: skipped by name; a name no one has is refused."""
    broker, clock, root = MemoryBroker(), ManualClock(), unique_root()
    async with contextlib.AsyncExitStack() as stack:
        await start_components(stack, broker, clock, root, tmp_path, "ATDome")
        queue = await stack.enter_async_context(queue_rig(broker, clock, MemoryQueueStore(), root))
        data = {"data": [["ESS:201", "ENABLED"], ["ATDome", "ENABLED"], ["ATPtg", "ENABLED"]]}
        script = {"name": "set_summary_state.py", "standard": True, "parameters": data}
        added = {"name": "s", "program": "BLOCK-T4", "scripts": [script]}
        (index,) = json.loads((await queue.rig.command("addBlock", {"id": json.dumps(added)})).result)
        await queue.until(lambda: queue.items().get(index, {}).get("area") == "history")
        assert queue.items()[index]["state"] == "DONE", queue.items()[index]
        async with Remote(queue.rig.remote_bus, "ATDome", clock=clock, root=root) as remote:
            assert (await remote.event("summaryState").aget(timeout_s=1))["summaryState"] == State.ENABLED
        script["parameters"] = {"data": [["ATDomee", "ENABLED"]]}
        with pytest.raises(AckError, match="'ATDomee' is no component of this observatory"):
            await queue.rig.command("addBlock", {"id": json.dumps(added)})


async def test_prepare_for_flat_homes_and_closes_the_dome_as_rubins_does(tmp_path: Path) -> None:
    """The dome left open (main and dropout doors): prepare_for/flat homes it, closes it, points both at the screen."""
    broker, clock, root = MemoryBroker(), ManualClock(), unique_root()
    async with contextlib.AsyncExitStack() as stack:
        await start_components(stack, broker, clock, root, tmp_path, "ATDome", "ATMCS")
        queue = await stack.enter_async_context(queue_rig(broker, clock, MemoryQueueStore(), root))
        enable = {"name": "set_summary_state.py", "standard": True,
                  "parameters": {"data": [["ATDome", "ENABLED"], ["ATMCS", "ENABLED"]]}}  # fmt: skip
        scripts = [enable] + [{"name": f"auxtel/{name}.py", "standard": True, "parameters": {}} for name in (
            "atdome/open_dome", "atdome/open_dropout_door", "atdome/open_dome", "prepare_for/flat")]  # fmt: skip
        added = {"name": "flat", "program": "BLOCK-T5", "scripts": scripts}
        indices = json.loads((await queue.rig.command("addBlock", {"id": json.dumps(added)})).result)
        await queue.until(lambda: queue.items().get(indices[-1], {}).get("area") == "history")
        assert [queue.items()[i]["state"] for i in indices] == ["DONE"] * 5, [queue.items()[i] for i in indices]
        async with Remote(queue.rig.remote_bus, "ATDome", clock=clock, root=root, telemetry=True) as dome:
            for event, value in (("mainDoorState", {"state": 1}), ("dropoutDoorState", {"state": 1}),
                                 ("azimuthPosition", {"azimuth": 3.0, "homed": True}),
                                 ("allAxesInPosition", {"inPosition": True})):  # fmt: skip
                assert await dome.event(event).aget(timeout_s=1) == value, event
