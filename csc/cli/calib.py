"""`obsq calib`: the calibration repository (list, show, certify)."""

from __future__ import annotations

import argparse
from pathlib import Path

from obsq.csc.cli.common import DEFAULT_DATA_DIR, Subparsers


def mjd(text: str) -> float:
    """An MJD from a number or a UTC date/time (ISO 8601: 2026-11-30, 2026-11-30T12:00)."""
    import datetime

    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither an MJD nor a date (2026-11-30, 2026-11-30T12:00)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp() / 86400.0 + 40587.0


def add(sub: Subparsers) -> None:
    from obsq.csc.ocps.catalog import PRODUCT_TYPES

    p = sub.add_parser("calib", help="the calibration repository", description="List, show and certify products.")
    p.add_argument(
        "--data",
        type=Path,
        default=Path(DEFAULT_DATA_DIR),
        help="the data folder, as `obsq up` and `obsq reduce` use it (default %(default)s)",
    )
    p.add_argument("--repo", type=Path, help="repository folder (default DATA/repo)")
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
    q.add_argument("--begin", type=mjd, required=True, help="validity start: an MJD or a UTC date, 2026-11-30 "
                   "or 2026-11-30T12:00")  # fmt: skip
    q.add_argument("--end", type=mjd, required=True, help="validity end, exclusive: an MJD or a UTC date")
    q.add_argument("--force", action="store_true", help="supersede overlapping certifications over this range")
    q = actions.add_parser(
        "due", help="which masters the calibration policy makes due, and why",
        description="For the setups of recent raw frames (detector, binning, readout, gain, offset, temperature), "
        "what the policy (deploy/calibration-policy.yaml) makes due: a new setup at once, a refresh by age or "
        "season, or early when a master drifted more than 10 % from the one before it.",
    )  # fmt: skip
    q.add_argument("--raws", type=Path, help="raw frames whose setups are in use (default DATA/raw)")
    q.add_argument("--days", type=float, default=30.0, help="how recent the raws are (default %(default)s days)")
    q.add_argument("--policy", type=Path, help="the policy file (default deploy/calibration-policy.yaml)")
    q.add_argument("--json", action="store_true", help='a JSON list of {"type", "setup", "filter", "reason", "last"}')
    q.set_defaults(handler=run_due)
    for action in actions.choices.values():  # also after the action: `obsq calib list --data FOLDER`
        action.add_argument("--data", type=Path, default=argparse.SUPPRESS, help="the data folder (default obsq-data)")
        action.add_argument(
            "--repo", type=Path, default=argparse.SUPPRESS, help="repository folder (default DATA/repo)"
        )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from obsq.csc.app.calib import CalibOptions, run_calib

    options = CalibOptions(
        repo_of(args), args.action, type=getattr(args, "type", None), filter_expr=getattr(args, "filter_expr", None),
        id=getattr(args, "id", 0), begin_mjd=getattr(args, "begin", 0.0), end_mjd=getattr(args, "end", 0.0),
        force=getattr(args, "force", False),
    )  # fmt: skip
    return run_calib(options)


def run_due(args: argparse.Namespace) -> int:
    from obsq.csc.app.calib import DueOptions
    from obsq.csc.app.calib import run_due as due

    repo = repo_of(args)
    raws = args.raws or repo.parent / "raw"
    return due(DueOptions(repo, raws, args.days, args.json, args.policy))


def repo_of(args: argparse.Namespace) -> Path:
    """--repo, else the data folder's repo/."""
    return Path(args.repo) if args.repo is not None else Path(args.data) / "repo"
