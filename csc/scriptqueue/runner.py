"""How the queue runs a script: as its own OS process, or as a task in this process (unit tests).

The queue only needs a handle: the script's `origin` (the `private_origin` of what it publishes,
which tells its events from those of an earlier script with the same index), its exit status,
and a way to ask it to end (`terminate`, SIGTERM: the script stops and cleans up) or to end it
at once (`kill`, SIGKILL). `ProcessRunner` is what every deployment uses;
`inprocess.InProcessRunner` runs the same script classes on a memory bus in virtual time, so
the queue's rules are unit-tested without processes or a broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from obsq.csc.procstat import process_cpu_s


class ScriptHandle(Protocol):
    """One running script, as the queue sees it."""

    @property
    def origin(self) -> int:
        """The `private_origin` of the script's messages (its process id)."""
        ...

    @property
    def returncode(self) -> int | None:
        """Its exit status once it has ended, else None."""
        ...

    async def wait(self) -> int:
        """Until it has ended; its exit status (0 for DONE or STOPPED)."""
        ...

    def terminate(self) -> None:
        """Ask it to end now (it stops and runs its cleanup)."""
        ...

    def kill(self) -> None:
        """End it at once."""
        ...

    def cpu_s(self) -> float | None:
        """CPU time it has used so far (its progress while it starts), or None if that cannot be told."""
        ...


class ScriptRunner(Protocol):
    """Starts scripts for the queue."""

    async def start(self, index: int, path: str, standard: bool) -> ScriptHandle:
        """Start script `path` as `Script:{index}`; it then publishes its state and takes commands."""
        ...


@dataclass(frozen=True)
class ProcessRunner:
    """Each script its own process (`python -m obsq.scripts.process`), on the queue's broker and clock."""

    broker: str
    root: str
    speed: float = 1.0
    epoch: float | None = None
    ca_file: str | None = None
    log_dir: Path | None = None
    #: added to each script's environment: its credentials (`obsq.csc.bus.credentials.child_environment`)
    env: Mapping[str, str] = field(default_factory=dict)

    def argv(self, index: int, path: str, standard: bool) -> list[str]:
        """The command line of one script process: the one place it is written."""
        argv = [sys.executable, "-m", "obsq.scripts.process", path, str(index), "--broker", self.broker,
                "--root", self.root, "--speed", f"{self.speed:g}"]  # fmt: skip
        if standard:
            argv.append("--standard")
        if self.epoch is not None:
            argv += ["--epoch", repr(self.epoch)]
        if self.ca_file:
            argv += ["--ca-file", self.ca_file]
        return argv

    async def start(self, index: int, path: str, standard: bool) -> _ProcessHandle:
        log_file = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            log_file = (self.log_dir / f"{index}.log").open("ab")
        try:
            process = await asyncio.create_subprocess_exec(
                *self.argv(index, path, standard),
                stdin=asyncio.subprocess.DEVNULL, stdout=log_file, stderr=log_file, env={**os.environ, **self.env},
            )  # fmt: skip
        finally:
            if log_file is not None:
                log_file.close()
        return _ProcessHandle(process)


class _ProcessHandle:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @property
    def origin(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    async def wait(self) -> int:
        return await self.process.wait()

    def terminate(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.terminate()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()

    def cpu_s(self) -> float | None:
        return process_cpu_s(self.process.pid) if self.process.returncode is None else None
