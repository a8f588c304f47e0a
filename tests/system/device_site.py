"""A component or a site on real devices, driven the way a site drives it: the helpers the device tests share.

`command_on_devices` runs `obsq csc run NAME --device ROLE=URL …` and sends it one command with
`obsq cmd` until it answers; `run_block_on_devices` runs `obsq up --devices FILE`, adds a block
with `obsq queue add-block` and waits for its scripts to be DONE (any FAILED ends the wait).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from obsq.csc.bus.memory import MemoryBroker
from obsq.csc.clock import Clock, LoopClock
from obsq.csc.component import BaseCsc, Remote
from obsq.csc.core.states import State
from obsq.csc.core.topics import ComponentId
from obsq.csc.observatory import component_argv
from obsq.csc.testing import unique_root

from .conftest import run_cli, stop_processes


@contextlib.asynccontextmanager
async def serving(
    make: Callable[..., BaseCsc], name: str, clock: Clock, *, telemetry: bool = False
) -> AsyncIterator[tuple[Any, Remote]]:
    """A component made by `make(bus=, clock=, root=)` on a memory bus of its own, and a Remote of it."""
    broker, root = MemoryBroker(), unique_root()
    csc = make(bus=broker.client("csc"), clock=clock, root=root)
    remote_bus = broker.client("remote")
    await csc.bus.start()
    await remote_bus.start()
    async with csc, Remote(remote_bus, name, clock=clock, root=root, telemetry=telemetry) as remote:
        yield csc, remote


async def command_on_devices(
    component: str, devices: dict[str, str], broker: str, root: str, folder: Path, *command: str
) -> subprocess.CompletedProcess[str]:
    """`obsq csc run component --device …` ENABLED, and `obsq cmd component *command` once it answers."""
    argv = component_argv(ComponentId.parse(component), broker=broker, root=root, simulate=False,
                          state=State.ENABLED, data=folder, devices=devices)  # fmt: skip
    log = folder / f"{component}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        for _ in range(300):  # bounds a hang only: until it is ENABLED and answers
            done = await asyncio.to_thread(run_cli, "cmd", component, *command, "--broker", broker, "--root", root)
            if done.returncode == 0 or process.poll() is not None:
                break
            await LoopClock().sleep(0.5)
        assert done.returncode == 0, f"{done.stdout} {done.stderr} {log.read_text()}"
        return done
    finally:
        stop_processes(process)


async def run_block_on_devices(
    devices: str, block: dict[str, Any], members: str, broker: str, root: str, folder: Path
) -> Path:
    """`obsq up --devices` (YAML `devices`) with `members`, the block added, every script DONE; the data folder."""
    (folder / "devices.yaml").write_text(devices)
    (folder / "block.json").write_text(json.dumps(block))
    link = ("--broker", broker, "--root", root)
    data, log = folder / "data", folder / "up.log"
    with log.open("wb") as out:
        up = subprocess.Popen(
            [sys.executable, "-m", "obsq.csc.cli", "up", *link, "--state", "enabled",
             "--devices", str(folder / "devices.yaml"), "--only", members, "--data", str(data)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    clock = LoopClock()
    try:
        while "obsq up: ready" not in log.read_text():  # the test's timeout bounds a bring-up that hangs
            assert up.poll() is None, log.read_text()
            await clock.sleep(0.2)
        added = await asyncio.to_thread(run_cli, "queue", "add-block", str(folder / "block.json"), *link)
        assert added.returncode == 0, added.stdout + added.stderr
        shown = ""
        while shown.count(" DONE ") < len(block["scripts"]):
            assert "FAILED" not in shown, shown
            shown = (await asyncio.to_thread(run_cli, "queue", "show", *link)).stdout
            await clock.sleep(0.5)
    finally:
        stop_processes(up)
    return data
