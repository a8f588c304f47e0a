"""One script, one process: `python -m obsq.scripts.process PATH INDEX [--standard] --broker ...`.

The ScriptQueue and `obsq script run` start scripts this way. `--schema` prints the
script's configuration schema as YAML and exits (as SAL scripts do).

A script's process ends when its script ends: once the script is in a final state (or its
component has stopped serving) the process has EXIT_DEADLINE_S real seconds to close its link
and exit, after which it writes every thread's stack and its event loop's tasks to its log and
exits all the same. Nothing a finished script left behind (a task that ignored its cancellation,
a link that does not close, a thread) keeps its process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

import structlog
import yaml

from obsq.csc.bus.credentials import Credentials
from obsq.csc.bus.mqtt import MqttBus, client_id_for
from obsq.csc.bus.url import BrokerUrl
from obsq.csc.clock import LoopClock, blocking_sleep
from obsq.csc.core.errors import ObsqError
from obsq.csc.core.topics import DEFAULT_ROOT
from obsq.scripts.base import BaseScript
from obsq.scripts.library import ScriptRoots, load_script_class

#: How often a script checks that the process that started it is still there (s).
PARENT_POLL_S = 0.2
#: Real seconds a script's process has, from its script's final state, to close its link and exit.
EXIT_DEADLINE_S = 10.0
#: Real seconds the link to the broker has to close (a clean DISCONNECT) before the process goes on without.
BUS_CLOSE_S = 10.0


async def run_script_process(args: argparse.Namespace) -> int:
    roots = ScriptRoots.default()
    cls = load_script_class(roots.resolve(args.path, args.standard))
    clock = LoopClock(args.speed, epoch_tai=args.epoch)
    # the password comes from the environment the queue gave this process, never from its argv
    url = Credentials.from_environment().apply(BrokerUrl.parse(args.broker, ca_file=args.ca_file))
    bus = MqttBus(url, client_id=client_id_for(url.username, f"Script-{args.index}"), clock=clock.unscaled())
    script = cls(index=args.index, bus=bus, clock=clock, root=args.root, log_level=args.log_level)
    await bus.start()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, script.close)
    deadline = _ExitDeadline(lambda: script.exit_code if script.exit_code is not None else 1)
    watcher = asyncio.create_task(_exit_with_parent(script.close, clock))
    ended = asyncio.create_task(_start_at_end(script, deadline))
    try:
        await script.run()
    finally:
        deadline.start()
        ended.cancel()
        watcher.cancel()
        try:
            await clock.unscaled().wait_for(bus.close(), BUS_CLOSE_S)
        except TimeoutError:
            script.log.warning("link_not_closed", within_s=BUS_CLOSE_S)
    return script.exit_code if script.exit_code is not None else 1


async def _start_at_end(script: BaseScript, deadline: _ExitDeadline) -> None:
    await script.ended.wait()
    deadline.start()


class _ExitDeadline:
    """From `start()` on, the process exits within EXIT_DEADLINE_S real seconds, whatever hangs.

    A daemon thread, so that it acts even when the event loop is blocked, or is gone and the
    interpreter waits at exit for a thread: it writes what still runs to stderr (the script's log)
    and ends the process with the script's exit status.
    """

    def __init__(self, exit_code: Callable[[], int]) -> None:
        self._exit_code = exit_code
        self._loop = asyncio.get_running_loop()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._expire, name="exit-deadline", daemon=True)
            self._thread.start()

    def _expire(self) -> None:
        blocking_sleep(EXIT_DEADLINE_S)
        print(f"obsq script: still running {EXIT_DEADLINE_S:g} s after its script ended; exiting. What ran:",
              file=sys.stderr, flush=True)  # fmt: skip
        with contextlib.suppress(Exception):  # the loop's tasks, read from another thread: best effort
            for task in list(asyncio.all_tasks(self._loop)):
                print(f"  task {task.get_name()}: {_awaiting(task)}", file=sys.stderr)
        for thread in threading.enumerate():
            if thread is not threading.current_thread():
                print(f"  thread {thread.name}{'' if thread.daemon else ' (not daemon)'}", file=sys.stderr)
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        sys.stderr.flush()
        os._exit(self._exit_code())  # the process has nothing left to do: do not wait for what hangs


def _awaiting(task: asyncio.Task[object]) -> str:
    """Where a task waits: its chain of coroutines, innermost last."""
    where: list[str] = []
    coro: Any = task.get_coro()
    while coro is not None and len(where) < 30:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None)
        if frame is not None:
            where.append(f"{frame.f_code.co_name} ({os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno})")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None)
    return " -> ".join(where) or repr(task)


async def _exit_with_parent(close: Callable[[], None], clock: LoopClock) -> None:
    """A script dies with whoever started it: a queue that crashes leaves no orphan running on."""
    parent = os.getppid()
    wall = clock.unscaled()
    while os.getppid() == parent:
        await wall.sleep(PARENT_POLL_S)
    close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m obsq.scripts.process", description=__doc__)
    parser.add_argument("path", help="script path relative to its root")
    parser.add_argument("index", type=int, help="SAL index (> 0)")
    parser.add_argument("--standard", action="store_true", help="a standard script (else external or site)")
    parser.add_argument("--schema", action="store_true", help="print the configuration schema (YAML) and exit")
    parser.add_argument("--broker", default="mqtt://127.0.0.1:18830")
    parser.add_argument("--ca-file")
    parser.add_argument("--root", default=DEFAULT_ROOT)
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--epoch", type=float)
    parser.add_argument("--log-level", type=int, default=logging.INFO)
    args = parser.parse_args(argv)
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    try:
        if args.schema:
            schema = load_script_class(ScriptRoots.default().resolve(args.path, args.standard)).get_schema()
            print(yaml.safe_dump(schema, sort_keys=False) if schema else "", end="")
            return 0
        return asyncio.run(run_script_process(args))
    except ObsqError as exc:
        print(f"obsq script: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
