"""`obsq calib` (the calibration repository) and `obsq reduce` (masters and PTC from any folder of FITS).

`obsq reduce` works offline, without a broker or the services: it opens the inputs, groups
them as filabres does (image type, signature, filter for flats, a time window anchored on the
first frame), and runs the same pipelines OCPS runs, with a progress bar on stderr.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from obsq.csc.clock import utc_now_unix
from obsq.csc.ocps import catalog, pipelines
from obsq.csc.ocps.repository import Repository, RepositoryError
from obsq.csc.reduction.frames import FrameError, open_frame

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


@dataclass(frozen=True)
class ReduceOptions:
    """`obsq reduce KIND INPUTS... --repo DIR`."""

    kind: str  # bias | dark | flat | ptc
    inputs: Sequence[str]
    repo: Path
    window_hours: float = 12.0
    method: str = "clipped_mean"
    iterations: int = 3
    type_override: str | None = None
    verify: bool = False
    force: bool = False
    progress: bool = False
    json: bool = False


def run_reduce(options: ReduceOptions) -> int:
    repo = Repository(options.repo, now=utc_now_unix)
    bar = ProgressBar(sys.stderr.isatty() or options.progress)
    kind = options.kind
    try:
        paths = expand_inputs(list(options.inputs))
        frames = [open_frame(p, imgtype=options.type_override) for p in paths]
        if kind == "ptc":
            chosen = [f for f in frames if f.imgtype in ("FLAT", "BIAS")]
            results = [
                catalog.run("cpPtc", repo, {"inputs": [str(f.path) for f in chosen], "force": options.force}, bar)
            ]
        else:
            wanted = [f for f in frames if f.imgtype == kind.upper()]
            if not wanted:
                raise pipelines.PipelineError(f"the input set is empty: no {kind} frames among {len(frames)} files")
            results = []
            for group in pipelines.group_frames(wanted, options.window_hours):
                config: dict[str, Any] = {"inputs": [str(f.path) for f in group], "force": options.force,
                                          "iterations": options.iterations, "method": options.method}  # fmt: skip
                built = catalog.run(f"cp{kind.capitalize()}", repo, config, bar)
                if options.verify:
                    verdict = catalog.run(f"cpVerify{kind.capitalize()}", repo,
                                          {"product": built["product"], "inputs": config["inputs"]}, bar)  # fmt: skip
                    built["verification"] = verdict["verdict"]
                results.append(built)
    except (pipelines.PipelineError, FrameError, RepositoryError) as exc:
        bar.close()
        print(f"obsq reduce: {exc}", file=sys.stderr)
        return 1
    bar.close()
    for result in results:
        print(json.dumps(result) if options.json else _describe(result))
    return 0


def _describe(result: dict[str, Any]) -> str:
    if result.get("type") == "ptc":
        amps = ", ".join(f"{k} g={a['gain']:.3f} e-/ADU RN={a['noise_e']:.2f} e-" for k, a in result["amps"].items())
        return f"ptc product {result['product']}: {amps}; plot {result['plot']}"
    extra = f", verification {result['verification']}" if "verification" in result else ""
    return (f"{result['type']} product {result['product']} v{result['version']} {result['filter'] or ''} from "
            f"{result['n_inputs']} frames{extra}: {result['path']}")  # fmt: skip


@dataclass(frozen=True)
class CalibOptions:
    """`obsq calib list | show ID | certify ID`."""

    repo: Path
    action: str  # list | show | certify
    type: str | None = None
    filter_expr: str | None = None
    id: int = 0
    begin_mjd: float = 0.0
    end_mjd: float = 0.0
    force: bool = False


def run_calib(options: CalibOptions) -> int:
    repo = Repository(options.repo, now=utc_now_unix)
    try:
        if options.action == "list":
            for p in repo.products(type_=options.type, where=options.filter_expr):
                ranges = ", ".join(f"[{b:.3f}, {e:.3f})" for b, e in p.certified) or "not certified"
                print(f"{p.id:>4} {p.type:<4} v{p.version:<2} {p.filter or '-':<22} {len(p.inputs):>3} inputs  "
                      f"{p.verified:<24} {ranges}")  # fmt: skip
        elif options.action == "show":
            product = repo.product(options.id)
            print(json.dumps(product.row() | {"file": str(repo.path_of(product)),
                                              "history": repo.history(product.id)}, indent=2))  # fmt: skip
        else:
            for line in repo.certify(options.id, options.begin_mjd, options.end_mjd, force=options.force):
                print(line)
    except RepositoryError as exc:
        print(f"obsq calib: {exc}", file=sys.stderr)
        return 1
    return 0
