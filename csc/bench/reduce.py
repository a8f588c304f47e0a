"""`obsq bench reduce`: the user's whole command against ccdproc, in one run on the same files.

The command is `obsq reduce bias FOLDER --repo REPO --verify` end to end — the survey of every
header, the combine, the master's file and registry, and its verification on every input — on
N float32 biases (`bench.combine.make_frames`). The baseline is what a ccdproc user runs for
the same master: `ccdproc.combine(method='average', sigma_clip=True, …)` on the same files,
its default mem_limit (no verification). Each case runs in its own process (`python -m
obsq.csc.bench.reduce CASE …`), so its peak memory (VmHWM) is its own; obsq runs `repeat`
times, the fastest kept (a shared machine only ever adds time), ccdproc once.
"""

from __future__ import annotations

import functools
import json
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from obsq.csc.bench.combine import fastest, make_frames, peak_rss_bytes
from obsq.csc.clock import perf_counter


@dataclass(frozen=True)
class ReduceBenchOptions:
    """`obsq bench reduce`: how many frames of which side, where they are kept, and whether ccdproc runs."""

    frames: int = 20
    size: int = 4096
    folder: str | None = None
    ccdproc: bool = True
    json_out: Path | None = None
    repeat: int = 2


def run_case(case: str, folder: Path, repo: Path) -> float:
    start = perf_counter()
    if case == "obsq":
        from obsq.csc.app.calib import ReduceOptions, run_reduce  # what `obsq reduce` runs, as it runs it

        code = run_reduce(ReduceOptions("bias", [str(folder)], repo, window_hours=1e5, verify=True, json=True))
        if code != 0:
            raise RuntimeError(f"obsq reduce exited {code}")
    elif case == "ccdproc":
        import ccdproc  # type: ignore[import-untyped]

        ccdproc.combine(sorted(str(p) for p in folder.glob("*.fits")), method="average", sigma_clip=True,
                        sigma_clip_func="median", sigma_clip_dev_func="mad_std", unit="adu")  # fmt: skip
    else:
        raise ValueError(f"case {case!r} is not obsq or ccdproc")
    return perf_counter() - start


def bench_reduce(options: ReduceBenchOptions) -> dict[str, Any]:
    """Both cases in child processes on the same files: seconds, peak GB and the speed-up."""
    base = Path(options.folder) if options.folder else Path(tempfile.gettempdir()) / "obsq-bench-reduce"
    folder = base / f"{options.frames}x{options.size}"
    folder.mkdir(parents=True, exist_ok=True)
    print(f"writing {options.frames} frames of {options.size}x{options.size} float32 to {folder} (kept)", flush=True)
    make_frames(folder, options.frames, options.size)
    results: dict[str, Any] = {"frames": options.frames, "size": options.size, "cases": {}}
    for case in ("obsq", "ccdproc"):
        if case == "ccdproc" and not options.ccdproc:
            continue
        repo = Path(tempfile.mkdtemp(prefix="obsq-bench-repo-"))
        try:  # every run into an empty repository (a second would find the master built)
            command = [sys.executable, "-m", "obsq.csc.bench.reduce", case, str(folder), str(repo)]
            results["cases"][case] = fastest([command] * (max(1, options.repeat) if case == "obsq" else 1),
                                             before=functools.partial(_empty, repo))  # fmt: skip
        finally:
            shutil.rmtree(repo, ignore_errors=True)
        print(f"  {case:<8} {json.dumps(results['cases'][case])}", flush=True)
    ours, theirs = results["cases"].get("obsq", {}), results["cases"].get("ccdproc", {})
    if "seconds" in ours and "seconds" in theirs:
        results["speedup_vs_ccdproc"] = theirs["seconds"] / ours["seconds"]
    return results


def _empty(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)


def run_reduce_benchmark(options: ReduceBenchOptions) -> int:
    """The `obsq bench reduce` command."""
    results = bench_reduce(options)
    print(f"\n{options.frames} frames of {options.size}x{options.size}: the whole obsq reduce bias --verify "
          "against ccdproc.combine")  # fmt: skip
    for case, f in results["cases"].items():
        if "seconds" in f:
            print(f"  {case:<8} {f['seconds']:8.2f} s {f['peak_gb']:6.2f} GB")
        else:
            print(f"  {case:<8} {f['error']}")
    if "speedup_vs_ccdproc" in results:
        print(f"  obsq is {results['speedup_vs_ccdproc']:.1f}x ccdproc")
    if options.json_out is not None:
        options.json_out.write_text(json.dumps(results, indent=2))
    return 0 if all("seconds" in f for f in results["cases"].values()) else 1


def main(argv: list[str]) -> int:
    case, folder, repo = argv
    seconds = run_case(case, Path(folder), Path(repo))
    print(json.dumps({"seconds": round(seconds, 3), "peak_gb": round(peak_rss_bytes() / 1e9, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
