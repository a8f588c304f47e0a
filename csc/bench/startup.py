"""`obsq bench startup`: how long the command line and the processes take to start, against `python -c pass`.

Every case is a fresh process of this interpreter, timed from spawn to exit; the cases are
interleaved round by round, so each sees the same machine noise, and the figure is each
case's median over the rounds divided by the median of `python -c pass`. Targets: `obsq
--help` and `obsq csc list` within 12x. The process cases show what a component, a script and a
reduction worker import before they do anything: the numeric stack only in the camera (FITS)
and the reduction worker.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from obsq.csc.clock import perf_counter

TARGET_RATIO = 12.0
#: What every component process imports before its own service (`obsq csc run`).
COMPONENT_PROCESS = "obsq.csc.cli, obsq.csc.app.components, obsq.csc.bus.mqtt"


def cases() -> dict[str, list[str]]:
    python = sys.executable
    obsq = [python, "-m", "obsq.csc.cli"]
    entry = Path(python).with_name("obsq")
    if entry.is_file():  # the installed entry point, as a user types it
        obsq = [str(entry)]
    return {
        "python -c pass": [python, "-c", "pass"],
        "obsq --help": [*obsq, "--help"],
        "obsq csc list": [*obsq, "csc", "list"],
        "ATDome process imports": [
            python,
            "-c",
            f"import {COMPONENT_PROCESS}, obsq.csc.atdome.csc, obsq.csc.atdome.sim",
        ],
        "ATCamera process imports": [
            python,
            "-c",
            f"import {COMPONENT_PROCESS}, obsq.csc.atcamera.csc, obsq.csc.atcamera.sim",
        ],
        "script process imports": [python, "-c", "import obsq.scripts.process"],
        "reduction worker imports": [python, "-c", "import obsq.csc.ocps.worker"],
    }


def time_once(argv: list[str]) -> float:
    t0 = perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return perf_counter() - t0


@dataclass(frozen=True)
class StartupBenchOptions:
    """`obsq bench startup`: how many interleaved rounds."""

    rounds: int = 15
    json_out: Path | None = None


def measure(rounds: int) -> dict[str, dict[str, float]]:
    """Median seconds per case over `rounds` interleaved rounds, and the ratio to `python -c pass`."""
    chosen = cases()
    for argv in chosen.values():  # warm the page cache and the bytecode once
        time_once(argv)
    times: dict[str, list[float]] = {name: [] for name in chosen}
    for _ in range(rounds):
        for name, argv in chosen.items():
            times[name].append(time_once(argv))
    base = statistics.median(times["python -c pass"])
    return {
        name: {"median_s": statistics.median(t), "ratio": statistics.median(t) / base, "max_s": max(t)}
        for name, t in times.items()
    }


def run_startup_benchmark(options: StartupBenchOptions) -> int:
    """The `obsq bench startup` command; exit status 1 if the command line misses its target."""
    figures = measure(options.rounds)
    print(f"start-up, median of {options.rounds} interleaved rounds (x = against python -c pass)")
    for name, f in figures.items():
        target = f"target <= {TARGET_RATIO:g}x" if name in ("obsq --help", "obsq csc list") else ""
        print(f"  {name:<28} {f['median_s'] * 1e3:8.1f} ms {f['ratio']:7.1f}x  {target}")
    if options.json_out is not None:
        options.json_out.write_text(json.dumps(figures, indent=2))
    missed = [n for n in ("obsq --help", "obsq csc list") if figures[n]["ratio"] > TARGET_RATIO]
    return 1 if missed else 0
