"""`obsq calib` (the calibration repository) and `obsq reduce` (masters and PTC from any folder of FITS).

`obsq reduce` works offline, without a broker or the services: it opens the inputs, groups
them as filabres does (image type, signature, filter for flats, a time window anchored on the
first frame), and runs the same pipelines OCPS runs, with a progress bar on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from obsq.csc.reduction import pipelines
from obsq.csc.reduction.frames import FrameError, open_frame
from obsq.csc.reduction.repository import PRODUCT_TYPES, Repository, RepositoryError

FITS_SUFFIXES = (".fits", ".fit", ".fts", ".FITS", ".FIT")


class ProgressBar:
    """One line on stderr, redrawn in place: `[#####.....]  50 % stage`."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.last = ""

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled or total <= 0:
            return
        filled = int(30 * done / total)
        line = f"\r[{'#' * filled}{'.' * (30 - filled)}] {100 * done // total:3d} % {stage[:40]:<40}"
        if line != self.last:
            sys.stderr.write(line)
            sys.stderr.flush()
            self.last = line

    def close(self) -> None:
        if self.enabled and self.last:
            sys.stderr.write("\n")
            self.last = ""


def expand_inputs(items: list[str]) -> list[str]:
    """Files as given; folders as the FITS files in them and below, sorted."""
    paths: list[str] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            paths += sorted(str(p) for p in path.rglob("*") if p.suffix in FITS_SUFFIXES and p.is_file())
        elif path.exists():
            paths.append(str(path))
        else:
            raise pipelines.PipelineError(f"{item}: no such file or folder")
    return paths


def cmd_reduce(args: argparse.Namespace) -> int:
    repo = Repository(args.repo)
    bar = ProgressBar(sys.stderr.isatty() or args.progress)
    try:
        paths = expand_inputs(args.inputs)
        frames = [open_frame(p, imgtype=args.type_override) for p in paths]
        if args.kind == "ptc":
            chosen = [f for f in frames if f.imgtype in ("FLAT", "BIAS")]
            results = [
                pipelines.run("cpPtc", repo, {"inputs": [str(f.path) for f in chosen], "force": args.force}, bar)
            ]
        else:
            wanted = [f for f in frames if f.imgtype == args.kind.upper()]
            if not wanted:
                raise pipelines.PipelineError(
                    f"the input set is empty: no {args.kind} frames among {len(frames)} files"
                )
            results = []
            for group in pipelines.group_frames(wanted, args.window_hours):
                config: dict[str, Any] = {"inputs": [str(f.path) for f in group], "force": args.force,
                                          "iterations": args.iterations, "method": args.method}  # fmt: skip
                built = pipelines.run(f"cp{args.kind.capitalize()}", repo, config, bar)
                if args.verify:
                    verdict = pipelines.run(f"cpVerify{args.kind.capitalize()}", repo,
                                            {"product": built["product"], "inputs": config["inputs"]}, bar)  # fmt: skip
                    built["verification"] = verdict["verdict"]
                results.append(built)
    except (pipelines.PipelineError, FrameError, RepositoryError) as exc:
        bar.close()
        print(f"obsq reduce: {exc}", file=sys.stderr)
        return 1
    bar.close()
    for result in results:
        print(json.dumps(result) if args.json else _describe(result))
    return 0


def _describe(result: dict[str, Any]) -> str:
    if result.get("type") == "ptc":
        amps = ", ".join(f"{k} g={a['gain']:.3f} e-/ADU RN={a['noise_e']:.2f} e-" for k, a in result["amps"].items())
        return f"ptc product {result['product']}: {amps}; plot {result['plot']}"
    extra = f", verification {result['verification']}" if "verification" in result else ""
    return (f"{result['type']} product {result['product']} v{result['version']} {result['filter'] or ''} from "
            f"{result['n_inputs']} frames{extra}: {result['path']}")  # fmt: skip


def cmd_calib(args: argparse.Namespace) -> int:
    repo = Repository(args.repo)
    try:
        if args.calib_command == "list":
            for p in repo.products(type_=args.type, where=args.filter_expr):
                ranges = ", ".join(f"[{b:.3f}, {e:.3f})" for b, e in p.certified) or "not certified"
                print(f"{p.id:>4} {p.type:<4} v{p.version:<2} {p.filter or '-':<22} {len(p.inputs):>3} inputs  "
                      f"{p.verified:<24} {ranges}")  # fmt: skip
        elif args.calib_command == "show":
            product = repo.product(args.id)
            print(json.dumps(product.row() | {"file": str(repo.path_of(product)),
                                              "history": repo.history(product.id)}, indent=2))  # fmt: skip
        else:
            for line in repo.certify(args.id, args.begin, args.end, force=args.force):
                print(line)
    except RepositoryError as exc:
        print(f"obsq calib: {exc}", file=sys.stderr)
        return 1
    return 0


def add_commands(sub: Any) -> None:
    p = sub.add_parser("calib", help="the calibration repository", description="List, show and certify products.")
    p.add_argument("--repo", default="data/repo", help="repository folder (default %(default)s)")
    actions = p.add_subparsers(dest="calib_command", required=True, metavar="ACTION")
    q = actions.add_parser("list", help="list products", description="Products, oldest first.")
    q.add_argument("--type", choices=PRODUCT_TYPES, help="only this type")
    q.add_argument("--filter-expr", help='e.g. \'filter == "SDSSr_65mm~empty_1" and version > 1\'; fields: type, '
                   "filter, version, verified, certified, mjd_mean, signature, stats, ...")  # fmt: skip
    q = actions.add_parser("show", help="one product in full", description="A product with provenance and history.")
    q.add_argument("id", type=int)
    q = actions.add_parser(
        "certify", help="certify a product", description="Certify into CALIBRATION for [begin, end)."
    )
    q.add_argument("id", type=int)
    q.add_argument("--begin", type=float, required=True, help="validity start (MJD)")
    q.add_argument("--end", type=float, required=True, help="validity end (MJD, exclusive)")
    q.add_argument("--force", action="store_true", help="supersede overlapping certifications over this range")
    p.set_defaults(func=cmd_calib, sync=True)

    p = sub.add_parser("reduce", help="build masters or a PTC from FITS files",
                       description="Group the inputs (type, signature, filter, time window) and build a master per "
                       "group, or a PTC from flat pairs, into --repo. Works on any folder of FITS.")  # fmt: skip
    p.add_argument("kind", choices=["bias", "dark", "flat", "ptc"])
    p.add_argument("inputs", nargs="+", help="FITS files or folders")
    p.add_argument("--repo", required=True, help="repository folder (created if missing)")
    p.add_argument("--window-hours", type=float, default=12.0, help="group frames within this span (default 12)")
    p.add_argument("--method", choices=["clipped_mean", "median"], default="clipped_mean")
    p.add_argument("--iterations", type=int, default=3, help="clipping iterations (1 = ccdproc's single pass)")
    p.add_argument("--type", dest="type_override", help="treat every input as this image type")
    p.add_argument("--verify", action="store_true", help="verify each master on its inputs (cp_verify)")
    p.add_argument("--force", action="store_true", help="build a new version even if these inputs were built")
    p.add_argument("--progress", action="store_true", help="progress bar even when stderr is not a terminal")
    p.add_argument("--json", action="store_true", help="one JSON result per line")
    p.set_defaults(func=cmd_reduce, sync=True)
