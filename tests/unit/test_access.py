"""The site ACL is the design: the shipped file is made from csc/access.py, and what the code does fits it.

BLOCK-295 runs through the queue on a recording memory broker; every subscription and publication
of the queue, of each script and of the spectrograph must be one its principal's grant allows. The
camera's illumination model's subscriptions are checked the same way.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest

from obsq.csc.access import Grant, allowed, grants, mosquitto_acl
from obsq.csc.atcamera.sim import BusObservatory
from obsq.csc.bus.memory import MemoryBroker
from obsq.csc.clock import ManualClock
from obsq.csc.compose import build_component
from obsq.csc.core.states import State
from obsq.csc.observatory import site_principals
from obsq.csc.scriptqueue.store import MemoryQueueStore
from obsq.csc.testing import unique_root

from .test_queue_inprocess import HEARTBEAT_S, ReductionDouble, queue_rig, run_block

ACL_FILE = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto" / "acl"
BY_USER = {g.user: g for g in grants()}


def test_the_shipped_acl_is_made_from_the_grants() -> None:
    assert ACL_FILE.read_text() == mosquitto_acl("obsq"), "run: obsq csc acl > deploy/mosquitto/acl"
    assert sorted(BY_USER) == sorted(site_principals())


@pytest.mark.parametrize(
    ("user", "access", "topic", "ok"),
    [
        ("ATDome", "write", "obsq/ATDome/0/evt/summaryState", True),
        ("ATDome", "write", "obsq/ATDome/5/evt/summaryState", False),  # another index of its name
        ("ATDome", "write", "obsq/ATCamera/0/evt/summaryState", False),  # another component's events
        ("ATDome", "write", "obsq/ATCamera/0/cmd/takeImages/ATDome", False),  # a component commanding another
        ("ATDome", "read", "obsq/ATDome/0/cmd/+", True),
        ("ATDome", "read", "obsq/ATCamera/0/cmd/+", False),
        ("ATCamera", "read", "obsq/ATDome/0/evt/+", True),
        ("Script", "write", "obsq/ATCamera/0/cmd/takeImages/Script", True),
        ("Script", "write", "obsq/ATCamera/0/cmd/takeImages/operator", False),  # under another user
        ("Script", "write", "obsq/ATCamera/0/cmd/takeImages", False),  # without its user
        ("Script", "write", "obsq/ScriptQueue/2/cmd/add/Script", False),  # scripts do not queue scripts
        ("ScriptQueue-2", "write", "obsq/Script/200005/cmd/run/ScriptQueue-2", True),
        ("ScriptQueue-2", "write", "obsq/ATCamera/0/cmd/takeImages/ScriptQueue-2", False),
        ("operator", "write", "obsq/ScriptQueue/2/cmd/addBlock/operator", True),
        ("operator", "read", "obsq/#", True),
        ("observer", "write", "obsq/ScriptQueue/2/cmd/pause/observer", False),
        ("observer", "read", "obsq/+/+/evt/+", True),
    ],
)
def test_each_principal_may_do_its_job_and_no_more(user: str, access: str, topic: str, ok: bool) -> None:
    assert allowed(BY_USER[user], "obsq", access, topic) is ok


def _check(grant: Grant, root: str, accesses: list[tuple[str, str]]) -> list[str]:
    """What `grant` does not allow, a command being written as an authenticated bus writes it (…/{user})."""
    denied = []
    for access, seen in accesses:
        command_without_user = access == "write" and "/cmd/" in seen and seen.count("/") == root.count("/") + 4
        topic = f"{seen}/{grant.user}" if command_without_user else seen
        if not allowed(grant, root, access, topic):
            denied.append(f"{grant.user} {access} {topic}")
    return denied


def _by_client(broker: MemoryBroker) -> dict[str, list[tuple[str, str]]]:
    assert broker.accesses is not None
    by_client: dict[str, list[tuple[str, str]]] = {}
    for client, access, topic in broker.accesses:
        by_client.setdefault(client, []).append((access, topic))
    return by_client


async def test_a_whole_block_does_only_what_the_acl_allows() -> None:
    broker, root = MemoryBroker(), unique_root()
    broker.record()
    await run_block("BLOCK-295", broker, ManualClock(), root)
    by_client = _by_client(broker)
    scripts = [c for c in by_client if c.startswith("Script-")]
    assert len(scripts) == 6
    denied = _check(BY_USER["ScriptQueue-2"], root, by_client["csc"])
    denied += _check(BY_USER["ATSpectrograph"], root, by_client["spectrograph"])
    for client in scripts:
        denied += _check(BY_USER["Script"], root, by_client[client])
    assert denied == []


async def test_the_cameras_illumination_model_reads_only_what_its_grant_allows() -> None:
    broker, root = MemoryBroker(), unique_root()
    broker.record()
    bus = broker.client("camera")
    await bus.start()
    observatory = BusObservatory(bus, ManualClock(), root)
    await observatory.start()
    await observatory.close()
    await bus.close()
    assert broker.accesses
    assert _check(BY_USER["ATCamera"], root, [(a, t) for _, a, t in broker.accesses]) == []


async def test_the_setup_and_shutdown_blocks_do_only_what_the_acl_allows(tmp_path: Path) -> None:
    """BLOCK-309 and BLOCK-310 against the real lamp, dome and mount services on their simulated drivers."""
    broker, clock, root = MemoryBroker(), ManualClock(), unique_root()
    broker.record()
    common = {"clock": clock, "root": root, "heartbeat_s": HEARTBEAT_S}
    members = {
        "whitelight": build_component("ATWhiteLight", index=0, simulate=True, inject=[], data_dir=tmp_path,
                                      bus=broker.client("whitelight"), initial_state=State.STANDBY, **common),
        "dome": build_component("ATDome", index=0, simulate=True, inject=[], data_dir=tmp_path,
                                bus=broker.client("dome"), initial_state=State.ENABLED, **common),
        "mount": build_component("ATMCS", index=0, simulate=True, inject=[], data_dir=tmp_path,
                                 bus=broker.client("mount"), initial_state=State.ENABLED, **common),
        "ocps": ReductionDouble(bus=broker.client("ocps"), initial_state=State.STANDBY, **common),
    }  # fmt: skip
    async with contextlib.AsyncExitStack() as stack:
        for csc in members.values():
            await csc.bus.start()
            stack.push_async_callback(csc.bus.close)
            await stack.enter_async_context(csc)
        queue = await stack.enter_async_context(queue_rig(broker, clock, MemoryQueueStore(), root))
        for block in ("BLOCK-309", "BLOCK-310"):
            indices = json.loads((await queue.rig.command("addBlock", {"id": block})).result)
            await queue.until(lambda i=indices: all(queue.items().get(n, {}).get("area") == "history" for n in i))
            assert [queue.items()[n]["state"] for n in indices] == ["DONE"] * len(indices), block
    by_client = _by_client(broker)
    scripts = [c for c in by_client if c.startswith("Script-")]
    assert len(scripts) == 7
    denied = [d for c in scripts for d in _check(BY_USER["Script"], root, by_client[c])]
    for client, user in (
        ("whitelight", "ATWhiteLight"),
        ("dome", "ATDome"),
        ("mount", "ATMCS"),
        ("csc", "ScriptQueue-2"),
    ):
        denied += _check(BY_USER[user], root, by_client[client])
    assert denied == []
