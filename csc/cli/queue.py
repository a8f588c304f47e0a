"""`obsq queue`: operate ScriptQueue:INDEX."""

from __future__ import annotations

import argparse
from pathlib import Path

from obsq.csc.cli.common import Subparsers, add_connection_options, connection, run_async

ACTIONS = {
    "show": "print the queue",
    "watch": "print the queue on every change",
    "pause": "start no new script",
    "resume": "run scripts again",
}


def add(sub: Subparsers) -> None:
    from obsq.csc.scriptqueue.model import FailureStrategy

    p = sub.add_parser("queue", help="operate the script queue", description="Operate ScriptQueue:INDEX.")
    p.add_argument("--queue", type=int, default=2, help="queue index (default 2, the auxiliary telescope's)")
    add_connection_options(p)
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = actions.add_parser("add-block", help="queue a block", description="Validate and queue a whole block.")
    q.add_argument("block", help="block id (BLOCK-295), block file, or block JSON")
    q.add_argument("--override", action="append", default=[], metavar="KEY=VALUE", help="block configuration")
    strategies = [s.name.lower().replace("_", "-") for s in FailureStrategy]
    q.add_argument(
        "--failure-strategy", choices=strategies, default="none",
        help="what a failed script does to the rest of the block (default none: the rest is dropped)",
    )  # fmt: skip
    q.add_argument("--target", default="", metavar="YAML",
                   help="the target Rubin's Scheduler would give the block, e.g. '{name: HD 104304, ra: "
                        "\"12:00:44.46\", dec: \"-10:26:46.1\"}' (ra hours, dec deg; also band_filter, "
                        "exp_times, rot_sky, targetid): its $ra, $dec, $alt, $az... (default: none, addBlock's "
                        "defaults)")  # fmt: skip
    q.add_argument("--check", action="store_true",
                   help="validate it as the queue would and send nothing (exit 0 accepted, 1 refused)")  # fmt: skip
    add_connection_options(q, after_action=True)
    q = actions.add_parser("add", help="queue one script", description="Validate and queue one script.")
    q.add_argument("path", help="script path, e.g. auxtel/take_image_latiss.py")
    q.add_argument("--external", action="store_true", help="an external (not standard) script")
    q.add_argument("--config", type=Path, help="YAML configuration file")
    q.add_argument("--location", default="last", help="first, last, before:INDEX or after:INDEX (default %(default)s)")
    add_connection_options(q, after_action=True)
    for name, text in ACTIONS.items():
        q = actions.add_parser(name, help=text, description=text)
        add_connection_options(q, after_action=True)
    q = actions.add_parser("stop", help="stop scripts", description="Remove queued scripts, stop the running one.")
    q.add_argument("indices", type=int, nargs="+", help="script indices")
    q.add_argument("--terminate", action="store_true", help="terminate the running script's process at once")
    add_connection_options(q, after_action=True)
    for name, text in (("move", "move a queued script"), ("requeue", "queue a copy of a script")):
        q = actions.add_parser(name, help=text, description=text)
        q.add_argument("indices", type=int, nargs=1, metavar="index", help="script index")
        q.add_argument("--location", default="first" if name == "move" else "last", help="first, last, "
                       "before:INDEX or after:INDEX (default %(default)s)")  # fmt: skip
        if name == "requeue":
            q.add_argument("--rest-of-block", action="store_true", help="a script of a block (which Rubin's "
                           "queue does not requeue alone): it and the later scripts of its block, as a new "
                           "execution")  # fmt: skip
        add_connection_options(q, after_action=True)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from obsq.csc.app.queue import QueueOptions, check_block, run_queue, strategy_names

    if args.action == "add-block" and args.check:
        return check_block(args.block, args.override, args.target)

    options = QueueOptions(
        connection(args), args.queue, args.action, block=getattr(args, "block", ""),
        overrides=getattr(args, "override", []), target=getattr(args, "target", ""),
        failure_strategy=strategy_names()[getattr(args, "failure_strategy", "none")],
        path=getattr(args, "path", ""), external=getattr(args, "external", False), config=getattr(args, "config", None),
        location=getattr(args, "location", "last"), indices=getattr(args, "indices", []),
        terminate=getattr(args, "terminate", False), rest_of_block=getattr(args, "rest_of_block", False),
    )  # fmt: skip
    return run_async(run_queue(options))
