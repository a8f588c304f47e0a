"""One script, one process: `python -m obsq.scripts.process PATH INDEX [--standard] --broker ...`.

The ScriptQueue and `obsq script run` start scripts this way. `--schema` prints the
script's configuration schema as YAML and exits (as SAL scripts do).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable

import structlog
import yaml

from obsq.csc.bus.credentials import Credentials
from obsq.csc.bus.mqtt import MqttBus
from obsq.csc.bus.url import BrokerUrl
from obsq.csc.clock import LoopClock
from obsq.csc.core.errors import ObsqError
from obsq.csc.core.topics import DEFAULT_ROOT
from obsq.scripts.library import ScriptRoots, load_script_class

#: How often a script checks that the process that started it is still there (s).
PARENT_POLL_S = 0.2


async def run_script_process(args: argparse.Namespace) -> int:
    roots = ScriptRoots.default()
    cls = load_script_class(roots.resolve(args.path, args.standard))
    clock = LoopClock(args.speed, epoch_tai=args.epoch)
    # the password comes from the environment the queue gave this process, never from its argv
    url = Credentials.from_environment().apply(BrokerUrl.parse(args.broker, ca_file=args.ca_file))
    bus = MqttBus(url, client_id=f"Script-{args.index}", clock=clock.unscaled())
    script = cls(index=args.index, bus=bus, clock=clock, root=args.root, log_level=args.log_level)
    await bus.start()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, script.close)
    watcher = asyncio.create_task(_exit_with_parent(script.close, clock))
    try:
        await script.run()
    finally:
        watcher.cancel()
        await bus.close()
    return script.exit_code if script.exit_code is not None else 1


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
