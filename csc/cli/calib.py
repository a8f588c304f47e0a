"""`obsq calib`: the calibration repository (list, show, certify)."""

from __future__ import annotations

import argparse
from pathlib import Path

from obsq.csc.cli.common import Subparsers


def add(sub: Subparsers) -> None:
    from obsq.csc.ocps.catalog import PRODUCT_TYPES

    p = sub.add_parser("calib", help="the calibration repository", description="List, show and certify products.")
    p.add_argument("--repo", type=Path, default=Path("data/repo"), help="repository folder (default %(default)s)")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = actions.add_parser("list", help="list products", description="Products, oldest first.")
    q.add_argument("--type", choices=PRODUCT_TYPES, help="only this type")
    q.add_argument("--filter-expr", help='e.g. \'filter == "SDSSr_65mm~empty_1" and version > 1\'; fields: type, '
                   "filter, version, verified, certified, mjd_mean, signature, stats, ...")  # fmt: skip
    q = actions.add_parser("show", help="one product in full", description="A product with provenance and history.")
    q.add_argument("id", type=int, help="product id")
    q = actions.add_parser(
        "certify", help="certify a product", description="Certify into CALIBRATION for [begin, end)."
    )
    q.add_argument("id", type=int, help="product id")
    q.add_argument("--begin", type=float, required=True, help="validity start (MJD)")
    q.add_argument("--end", type=float, required=True, help="validity end (MJD, exclusive)")
    q.add_argument("--force", action="store_true", help="supersede overlapping certifications over this range")
    q = actions.add_parser(
        "due", help="which masters the calibration policy makes due, and why",
        description="For the setups of recent raw frames (detector, binning, readout, gain, offset, temperature), "
        "what the policy (deploy/calibration-policy.yaml) makes due: a new setup at once, a refresh by age or "
        "season, or early when a master drifted more than 10 % from the one before it.",
    )  # fmt: skip
    q.add_argument("--raws", type=Path, help="raw frames whose setups are in use (default REPO/../raw)")
    q.add_argument("--days", type=float, default=30.0, help="how recent the raws are (default %(default)s days)")
    q.add_argument("--policy", type=Path, help="the policy file (default deploy/calibration-policy.yaml)")
    q.add_argument("--json", action="store_true", help='a JSON list of {"type", "setup", "filter", "reason", "last"}')
    q.set_defaults(handler=run_due)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from obsq.csc.app.calib import CalibOptions, run_calib

    options = CalibOptions(
        args.repo, args.action, type=getattr(args, "type", None), filter_expr=getattr(args, "filter_expr", None),
        id=getattr(args, "id", 0), begin_mjd=getattr(args, "begin", 0.0), end_mjd=getattr(args, "end", 0.0),
        force=getattr(args, "force", False),
    )  # fmt: skip
    return run_calib(options)


def run_due(args: argparse.Namespace) -> int:
    from obsq.csc.app.calib import DueOptions
    from obsq.csc.app.calib import run_due as due

    raws = args.raws or args.repo.parent / "raw"
    return due(DueOptions(args.repo, raws, args.days, args.json, args.policy))
