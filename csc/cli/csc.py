"""`obsq csc`: run one component as this process, or list the components."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from obsq.csc.bus.credentials import CREDENTIALS_DIR_ENV
from obsq.csc.cli.common import (
    Subparsers,
    add_connection_options,
    add_simulation_options,
    connection,
    payload_bytes,
    positive_float,
    run_async,
)
from obsq.csc.core.topics import DEFAULT_ROOT


def add(sub: Subparsers) -> None:
    p = sub.add_parser("csc", help="run or list component services", description="Component services.")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = actions.add_parser("run", help="run one component", description="Run one component until Ctrl-C/exitControl.")
    q.add_argument("component", metavar="NAME[:INDEX]", help="component, e.g. Test:1")
    q.add_argument("--simulate", action="store_true", help="use simulated hardware")
    q.add_argument(
        "--device", action="append", default=[], metavar="ROLE=URL",
        help="a real device the component drives, repeatable (ATSpectrograph: filter=alpaca://HOST:PORT/filterwheel/0"
        " and disperser=alpaca://HOST:PORT/filterwheel/1); runs at --speed 1",
    )  # fmt: skip
    q.add_argument(
        "--speed",
        type=positive_float,
        default=1.0,
        help="clock speed (600 runs a 900 s warm-up in 1.5 s; default %(default)g)",
    )
    q.add_argument(
        "--devices", type=Path, metavar="FILE", default=os.environ.get("OBSQ_DEVICES") or None,
        help="the site's devices file ($OBSQ_DEVICES): if it names this component, it runs on those devices"
        " (--device wins; a component it does not name runs as --simulate says)",
    )  # fmt: skip
    q.add_argument(
        "--device-speed", type=positive_float, default=1.0,
        help="the clock speed of its --device devices: 1 for real ones (the default); obsq's served simulation's"
        " (obsq alpaca serve --speed) for those",
    )  # fmt: skip
    q.add_argument(
        "--state",
        choices=("standby", "disabled", "enabled"),
        default="standby",
        help="initial state (default %(default)s)",
    )
    q.add_argument("--override", default="", help="configuration override file for an initial start (default: none)")
    q.add_argument("--config-dir", type=Path, help="configuration root (default $OBSQ_CONFIG_DIR or deploy/config)")
    q.add_argument("--site", help="site name: reads _SITE.yaml (default $OBSQ_SITE)")
    q.add_argument(
        "--log-level",
        default="info",
        choices=("debug", "info", "warning", "error"),
        help="log level (default %(default)s)",
    )
    q.add_argument("--epoch", type=float, help="TAI at which the scaled clock starts (shared by `obsq up`)")
    q.add_argument(
        "--max-payload-bytes", type=payload_bytes, default=None, metavar="N",
        help="largest command payload accepted (default: maxPayloadBytes of schemas/interfaces/generics.json, 1 MB)",
    )  # fmt: skip
    q.add_argument(
        "--credentials-dir", type=Path, default=os.environ.get(CREDENTIALS_DIR_ENV) or None, metavar="DIR",
        help="run as this component's own principal, DIR/PRINCIPAL.env, and hand the queue's scripts DIR/Script.env"
        f" (make-secrets' credentials/ folder; default ${CREDENTIALS_DIR_ENV}); --credentials wins if given",
    )  # fmt: skip
    add_simulation_options(q, data_help="where the camera writes raws and its registry")
    add_connection_options(q)
    q.set_defaults(handler=run)
    q = actions.add_parser("list", help="list known components", description="Components with an interface.")
    q.add_argument("--devices", type=Path, metavar="FILE", default=os.environ.get("OBSQ_DEVICES") or None,
                   help="the site's devices file ($OBSQ_DEVICES): say which devices each component drives")  # fmt: skip
    q.set_defaults(handler=run)
    q = actions.add_parser(
        "acl", help="print a site broker's Mosquitto ACL",
        description="The ACL of csc/access.py for a topic root (deploy/mosquitto/acl is the one for 'obsq').",
    )  # fmt: skip
    q.add_argument("--root", default=DEFAULT_ROOT, help=f"topic root (default {DEFAULT_ROOT})")
    q.set_defaults(handler=run)
    q = actions.add_parser(
        "principals", help="list a site broker's principals",
        description="The MQTT user names of a site broker, one a line (deploy/mosquitto/make-secrets reads them).",
    )  # fmt: skip
    q.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        from obsq.csc.app.listing import list_components

        return list_components(args.devices)
    if args.action == "acl":
        from obsq.csc.access import mosquitto_acl
        from obsq.csc.core.topics import check_root

        print(mosquitto_acl(check_root(args.root)), end="")
        return 0
    if args.action == "principals":
        from obsq.csc.observatory import site_principals

        print("\n".join(site_principals()))
        return 0
    import dataclasses

    from obsq.csc.app.bus_tools import component_id
    from obsq.csc.app.components import RunOptions, run_component
    from obsq.csc.core.principals import SCRIPTS_PRINCIPAL, principal_user
    from obsq.csc.core.states import State

    epoch = args.epoch if args.epoch is not None else os.environ.get("OBSQ_EPOCH")
    link = connection(args)
    script_credentials = None
    if args.credentials_dir is not None:
        if link.credentials is None:
            own = args.credentials_dir / f"{principal_user(component_id(args.component))}.env"
            link = dataclasses.replace(link, credentials=own)
        script_credentials = args.credentials_dir / f"{SCRIPTS_PRINCIPAL}.env"
    options = RunOptions(
        link, args.component, args.simulate, args.speed, State[args.state.upper()], args.override,
        args.config_dir, args.site, args.log_level, args.data, args.inject, float(epoch) if epoch is not None else None,
        args.max_payload_bytes, args.database, script_credentials, args.device, args.device_speed, args.devices,
    )  # fmt: skip
    return run_async(run_component(options))
