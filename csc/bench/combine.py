"""`obsq bench combine`: a clipped-mean master of N frames from FITS files, obsq against ccdproc.

Every case runs in a fresh process (`python -m obsq.csc.bench.combine CASE FILES…`), so its
peak memory (VmHWM, interpreter and imports included) is its own; the quick cases run `repeat`
times and keep their fastest (a shared machine only ever adds time), ccdproc (~40 s) once.
The cases, in one run on the same files:

- `floor`: read every file and average it, streaming (the read-and-average lower bound);
- `obsq-1`: the banded clipped mean, one clipping pass (ccdproc's algorithm, equal result);
- `obsq-3`: the same with 3 iterations (the master builders' default, as cpCombine's nIter);
- `ccdproc`: `ccdproc.combine(method='average', sigma_clip=True, sigma_clip_func='median',
  sigma_clip_dev_func='mad_std')` with its default mem_limit (skipped if ccdproc is missing).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from obsq.csc.clock import perf_counter
from obsq.csc.reduction.frames import open_frame
from obsq.csc.reduction.stack import Input, combine_plane

CASES = ("floor", "obsq-1", "obsq-3", "ccdproc")


def make_frames(folder: Path, n: int, size: int) -> list[Path]:
    """N float32 biases (1000 ADU, 8 ADU noise, cosmic rays), as reference/reduction-facts.md's benchmark."""
    rng = np.random.default_rng(42)
    paths = []
    for i in range(n):
        path = folder / f"bias_{size}_{i:02d}.fits"
        if not path.exists():
            data = rng.normal(1000.0, 8.0, (size, size)).astype(np.float32)
            hits = rng.integers(0, size, (2, size * size // 40_000))
            data[hits[0], hits[1]] += np.asarray(rng.uniform(200, 20_000, hits.shape[1]), np.float32)
            header = fits.Header({"IMAGETYP": "BIAS", "EXPTIME": 0.0, "MJD-OBS": 61000.0 + i / 1440})
            fits.PrimaryHDU(data, header).writeto(path)
        paths.append(path)
    return paths


def run_case(case: str, paths: list[Path]) -> float:
    start = perf_counter()
    if case == "floor":
        frames = [open_frame(p) for p in paths]
        total = np.zeros(frames[0].planes[0].shape, np.float64)
        for frame in frames:
            total += frame.read(frame.planes[0])
        total /= len(frames)
    elif case.startswith("obsq-"):
        frames = [open_frame(p) for p in paths]
        combine_plane([Input(f, f.planes[0]) for f in frames], iterations=int(case.split("-")[1]))
    elif case == "ccdproc":
        import ccdproc  # type: ignore[import-untyped]

        ccdproc.combine([str(p) for p in paths], method="average", sigma_clip=True, sigma_clip_func="median",
                        sigma_clip_dev_func="mad_std", unit="adu")  # fmt: skip
    else:
        raise ValueError(f"case {case!r} is not one of {', '.join(CASES)}")
    return perf_counter() - start


def bench_combine(n: int, size: int, folder: str | None, with_ccdproc: bool, repeat: int = 3) -> dict[str, Any]:
    """Run every case in a child process on the same files; seconds (fastest of `repeat`) and peak GB per case."""
    where = Path(folder) if folder else Path(tempfile.gettempdir()) / "obsq-bench-combine"
    where.mkdir(parents=True, exist_ok=True)
    print(f"writing {n} frames of {size}x{size} float32 to {where} (kept for the next run)", flush=True)
    paths = make_frames(where, n, size)
    results: dict[str, Any] = {"frames": n, "size": size, "cases": {}}
    for case in CASES:
        if case == "ccdproc" and not with_ccdproc:
            continue
        command = [sys.executable, "-m", "obsq.csc.bench.combine", case, *map(str, paths)]
        results["cases"][case] = fastest([command] * (1 if case == "ccdproc" else max(1, repeat)))
        print(f"  {case:<8} {json.dumps(results['cases'][case])}", flush=True)
    base = results["cases"].get("ccdproc", {})
    floor = results["cases"]["floor"]
    for figures in results["cases"].values():
        if "seconds" in figures:
            figures["x_floor"] = figures["seconds"] / floor["seconds"]
            if "seconds" in base:
                figures["speedup_vs_ccdproc"] = base["seconds"] / figures["seconds"]
    return results


@dataclass(frozen=True)
class CombineBenchOptions:
    """`obsq bench combine`: how many frames of which side, where, and whether ccdproc runs (~8 GB at 4096)."""

    frames: int = 20
    size: int = 4096
    folder: str | None = None
    ccdproc: bool = True
    json_out: Path | None = None
    repeat: int = 3


def run_combine_benchmark(options: CombineBenchOptions) -> int:
    """The `obsq bench combine` command."""
    results = bench_combine(options.frames, options.size, options.folder, options.ccdproc, options.repeat)
    print(f"\n{options.frames} frames of {options.size}x{options.size}: seconds, peak GB, x floor, speed-up vs ccdproc")
    for case, f in results["cases"].items():
        if "seconds" in f:
            speedup = f"{f['speedup_vs_ccdproc']:.1f}x" if "speedup_vs_ccdproc" in f else "-"
            print(f"  {case:<8} {f['seconds']:8.2f} s {f['peak_gb']:6.2f} GB {f['x_floor']:6.2f} {speedup:>7}")
        else:
            print(f"  {case:<8} {f['error']}")
    if options.json_out is not None:
        options.json_out.write_text(json.dumps(results, indent=2))
    return 0


def fastest(commands: list[list[str]], before: Callable[[], None] | None = None) -> dict[str, Any]:
    """Run each child (`before` each one) that prints {"seconds", "peak_gb"} last, and sum them up.

    The fastest, the largest peak and every run's seconds; or the first failure's last line of
    error (the runs stop there).
    """
    runs = []
    for command in commands:
        if before is not None:
            before()
        out = subprocess.run(command, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            return {"error": (out.stderr.strip().splitlines() or ["failed"])[-1]}
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {"seconds": min(r["seconds"] for r in runs), "peak_gb": max(r["peak_gb"] for r in runs),
            "runs": [r["seconds"] for r in runs]}  # fmt: skip


def peak_rss_bytes() -> int:
    """This process's peak resident memory (VmHWM; ru_maxrss would carry the parent's over exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main(argv: list[str]) -> int:
    case, *paths = argv
    seconds = run_case(case, [Path(p) for p in paths])
    peak_gb = peak_rss_bytes() / 1e9
    print(json.dumps({"seconds": round(seconds, 3), "peak_gb": round(peak_gb, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
