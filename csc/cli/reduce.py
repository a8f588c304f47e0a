"""`obsq reduce`: masters or a PTC from any camera's files, offline; lights calibrated with those masters."""

from __future__ import annotations

import argparse
from pathlib import Path

from obsq.csc.cli.common import Subparsers, positive_float

#: as obsq.csc.reduction.survey.DEFAULT_MIN_FRAMES (not imported: the command line loads no numeric stack)
DEFAULT_MIN_FRAMES = 3


def add(sub: Subparsers) -> None:
    p = sub.add_parser(
        "reduce", help="build masters or a PTC from FITS files",
        description="Survey the inputs from their headers, group them (type, signature, filter, time window) and "
        "build a master per group, or a PTC per signature and filter, into --repo; each group is built or refused on "
        "its own, then a table of the groups and an account of every file. Files named one by one must all be of "
        "KIND and one signature. Exit 0 if every group was built (or already was), 1 if not, 2 if the request "
        "itself is refused. `obsq reduce lights` calibrates every light (Light/Object/Science frame) with the bias, "
        "dark and flat of its signature in --repo (certified for its time, else the nearest, said so) into --out, in "
        "its own format, and accounts for every file. Reads FITS (.fits .fit .fts), tile-compressed (.fz), gzip'd "
        "(.gz) and XISF, offline (no broker).",
    )  # fmt: skip
    p.add_argument(
        "kind",
        choices=["bias", "dark", "flat", "ptc", "lights"],
        help="what to build; lights: calibrate light frames with the masters in --repo",
    )
    p.add_argument("inputs", nargs="+", help="FITS files or folders")
    p.add_argument("--repo", type=Path, required=True, help="repository folder (created if missing)")
    p.add_argument(
        "--window-hours",
        type=positive_float,
        default=12.0,
        help="group frames within this span (default %(default)g h)",
    )
    p.add_argument(
        "--method",
        choices=["clipped_mean", "median"],
        default="clipped_mean",
        help="combine method (default %(default)s)",
    )
    p.add_argument(
        "--iterations", type=int, default=3, help="clipping iterations (1 = ccdproc's single pass; default %(default)s)"
    )
    p.add_argument(
        "--type", dest="type_override", type=str.lower, choices=["bias", "dark", "flat"],
        help="treat every input given as this image type (e.g. flats the camera software typed 'Light Frame')",
    )  # fmt: skip
    p.add_argument(
        "--min-frames", type=int, default=DEFAULT_MIN_FRAMES,
        help=f"fewest frames a master is built from (default {DEFAULT_MIN_FRAMES})",
    )  # fmt: skip
    p.add_argument("--verify", action="store_true", help="verify each master on its inputs (cp_verify)")
    p.add_argument("--force", action="store_true", help="build a new version even if these inputs were built")
    p.add_argument("--progress", action="store_true", help="progress bar even when stderr is not a terminal")
    p.add_argument("--json", action="store_true", help="one JSON result per line")
    archive = p.add_argument_group("archive", "many nights: groups built at once")
    archive.add_argument("--jobs", type=int, default=1, help="groups built at once in local processes (default 1)")
    archive.add_argument(
        "--scheduler",
        metavar="tcp://HOST:8786",
        help="build the groups on this Dask distributed cluster (its workers see the same folders)",
    )
    archive.add_argument(
        "--database", metavar="URL", help="the registry: a path or postgresql://… (default REPO/registry.sqlite3)"
    )
    lights = p.add_argument_group("lights", "options of `obsq reduce lights`")
    lights.add_argument("--out", type=Path, help="folder of the calibrated lights (default: REPO/calibrated)")
    lights.add_argument("--cosmetic", action="store_true", help="replace the pixels the master dark shows hot")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.kind == "lights":
        from obsq.csc.app.lights import LightsOptions, run_lights

        return run_lights(LightsOptions(args.inputs, args.repo, args.out, args.cosmetic, args.force, args.json))
    from obsq.csc.app.calib import ReduceOptions, run_reduce

    options = ReduceOptions(
        args.kind, args.inputs, args.repo, args.window_hours, args.method, args.iterations, args.type_override,
        args.verify, args.force, args.progress, args.json, args.min_frames, max(1, args.jobs), args.scheduler,
        args.database,
    )  # fmt: skip
    return run_reduce(options)
