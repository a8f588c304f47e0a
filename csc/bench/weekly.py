"""`obsq bench weekly`: the main job once, and where its wall time went.

Runs `obsq weekly` (private broker, the simulated observatory, BLOCK-309/295/310, the PTC)
into a temporary folder and itemises its wall time from what the run left behind:

- bring-up: the broker and seven component processes until each shows its heartbeat and state;
- adding the blocks: every script's process started and configured (13 processes, at add time);
- simulated waits: the scripts' own estimates of their simulated durations, divided by the speed
  (exposures, readouts, the lamp's warm-up, slews, wheel moves);
- FITS writes: the camera's time writing its raw files (`write_ms` in its log), which overlaps
  the simulated readouts;
- reduction: the OCPS jobs' run times (two workers; they overlap the image taking, except the
  last type's master and the PTC at the end);
- the rest (framework, messages, the summary and the report) is what remains.

The run's folder is removed after a run that passed, unless `--dir` was given; a failed run's
is kept, and why it failed (the summary's outcome, the scripts not DONE, failed checks and jobs)
is printed with where its logs are.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from obsq.csc.app.connection import Connection
from obsq.csc.clock import perf_counter
from obsq.csc.database import Registries
from obsq.csc.ocps.jobs import JobStore
from obsq.csc.scriptqueue.store import DatabaseQueueStore
from obsq.csc.weekly.follow import Progress
from obsq.csc.weekly.run import WeeklyOptions, run_weekly

_WRITE_MS = re.compile(r"image_written .*write_ms=([0-9.]+)")


@dataclass
class _Recorder:
    """A WeeklyView that only notes when things happened."""

    t0: float = field(default_factory=perf_counter)
    marks: dict[str, float] = field(default_factory=dict)
    summary_data: dict[str, Any] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)

    def line(self, text: str) -> None:
        self.lines.append(text)
        if "observatory ready" in text:
            self.marks["ready"] = perf_counter() - self.t0

    def queued(self, block: str, indices: list[int]) -> None:
        self.marks["queued"] = perf_counter() - self.t0

    def progress(self, progress: Progress) -> None:
        pass

    def summary(self, summary: dict[str, Any]) -> None:
        self.marks["summary"] = perf_counter() - self.t0
        self.summary_data = summary


@dataclass(frozen=True)
class WeeklyBenchOptions:
    """`obsq bench weekly`: the speed, and where the run's data is kept (default: a temporary folder)."""

    speed: float = 600.0
    folder: Path | None = None


def _write_ms(log: Path) -> list[float]:
    return [float(m.group(1)) for m in _WRITE_MS.finditer(log.read_text(errors="replace"))] if log.is_file() else []


def _job_seconds(registries: Registries) -> tuple[int, float]:
    jobs = JobStore(registries.jobs).jobs()
    return len(jobs), sum((j.finished or 0.0) - (j.started or 0.0) for j in jobs if j.started is not None)


def _simulated_s(registries: Registries, speed: float) -> float:
    """The scripts' estimated simulated durations (their metadata, kept in the queue's store), in real seconds."""
    model = DatabaseQueueStore(registries.queue(2), "ScriptQueue:2").load(first_index=0)
    return sum(item.duration_s for item in model.items()) / speed


def _left_behind(run: Path, speed: float) -> tuple[list[float], int, float, float]:
    """FITS write times, the number of jobs and their seconds, and the simulated waits, from the run's folder."""
    registries = Registries.at(run)
    jobs, job_s = _job_seconds(registries)
    return _write_ms(run / "logs" / "ATCamera.log"), jobs, job_s, _simulated_s(registries, speed)


#: How many failed checks, and how many of the run's last lines, a failure shows.
SHOWN_FAILURES = 10
SHOWN_LINES = 8


def _one_line(text: str, width: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _failed_calibration(calibration: dict[str, Any]) -> list[str]:
    """The failed checks, failed reduction jobs and an off PTC of the summary's `calibration` (ocps.report)."""
    out = []
    failures = calibration.get("failures", [])
    if failures:
        out.append(f"  failed checks ({len(failures)}):")
        for f in failures[:SHOWN_FAILURES]:
            where = ", ".join(f"{k} {f[k]}" for k in ("amp", "exposure") if f.get(k) not in (None, ""))
            value = f"{f.get('value')} (limit {f.get('limit_value')})"
            detail = f" — {_one_line(f['detail'], 160)}" if f.get("detail") else ""
            out.append(f"    {f.get('kind')} {f.get('name')}{f' ({where})' if where else ''}: {value}{detail}")
        if len(failures) > SHOWN_FAILURES:
            out.append(f"    … and {len(failures) - SHOWN_FAILURES} more (in the report)")
    jobs = calibration.get("jobs", {})
    if jobs.get("failed"):
        out.append(f"  failed reduction jobs ({len(jobs['failed'])} of {jobs.get('total', '?')}):")
        out += [f"    job {j['id']} {j['pipeline']}: {_one_line(j.get('result') or 'no result')}"
                for j in jobs["failed"]]  # fmt: skip
    ptc = calibration.get("ptc")
    if ptc:
        off = [name for name, amp in ptc.get("amps", {}).items() if not amp.get("gain_ok", True)]
        if off:
            out.append(f"  PTC: gain off nominal in {len(off)} amplifier(s): {', '.join(off)}")
        if not ptc.get("covers_range", True):
            out.append("  PTC: the flats do not cover the range")
    if calibration.get("recovery"):
        out.append("  recovery: " + "; ".join(calibration["recovery"]))
    return out


def failure_report(summary: dict[str, Any], lines: list[str], run: Path | None, folder: Path) -> list[str]:
    """Why a weekly run failed, from its summary (weekly.run; empty if it never wrote one), and where it is kept.

    Args:
        summary: the weekly summary the run's view was given, or {} if the run ended before it.
        lines: what the run said on the way (its view's lines), the last few of which are shown.
        run: the run's own folder (`weekly-<stamp>`), if it made one.
        folder: the folder the run was given (kept whole), shown if the run made none of its own.

    Returns:
        The lines to print.
    """
    out = []
    if summary:
        out.append(f"why it failed — the summary's outcome: {summary.get('outcome', 'none given')}")
        scripts = summary.get("scripts", [])
        not_done = [s for s in scripts if s.get("state") != "DONE"]
        if not scripts:
            out.append("  no script of the blocks was seen in the queue")
        elif not not_done and str(summary.get("outcome", "")).startswith("FAILED"):
            out.append(f"  all {len(scripts)} scripts seen are DONE, but not every script added was seen to end")
        if not_done:
            out.append(f"  scripts not DONE ({len(not_done)} of {len(scripts)}):")
        for s in not_done:
            reason = _one_line(s.get("reason") or "no reason given")
            log_file = run / "logs" / "scripts" / f"{s.get('index')}.log" if run else None
            log = f"; log {log_file}" if log_file else ""
            out.append(f"    {s.get('index')} {s.get('block')} {s.get('path')}: {s.get('state')} — {reason}{log}")
        calibration = summary.get("calibration")
        if calibration is not None and not calibration.get("passed", True):
            out.append("  calibration: FAILED")
            out += _failed_calibration(calibration)
    else:
        out.append("why it failed — the run ended before its summary (see its last lines, and the error below if any)")
    if lines:
        out.append("  the run's last lines:")
        out += [f"    {_one_line(line)}" for line in lines[-SHOWN_LINES:]]
    out.append(f"kept: {run or folder}")
    if run is not None:
        for label, path in (("summary", summary.get("file")), ("report", summary.get("report"))):
            if path:
                out.append(f"  {label}: {path}")
        out.append(f"  logs: {run / 'logs'} (components), {run / 'logs' / 'scripts'} (scripts, by index)")
    return out


def _breakdown(view: _Recorder, run: Path | None, options: WeeklyBenchOptions, code: int) -> list[str]:
    """The headline and where the wall time went (what could be read of it, after a failure)."""
    total = view.marks.get("summary", perf_counter() - view.t0)
    ready = view.marks.get("ready", 0.0)
    queued = view.marks.get("queued", ready) - ready
    images = sum(row["count"] for row in view.summary_data.get("images", []))
    try:
        if run is None:
            raise ValueError("the run made no folder")
        writes, jobs, job_s, simulated = _left_behind(run, options.speed)
    except (OSError, ValueError, sqlite3.Error) as exc:
        if code == 0:
            raise
        return [f"obsq weekly at speed {options.speed:g}: FAILED, {images} images; {total:.1f} s "
                f"(no breakdown: {_one_line(str(exc), 160)})"]  # fmt: skip
    out = [f"obsq weekly at speed {options.speed:g}: {'passed' if code == 0 else 'FAILED'}, {images} images, "
           f"{jobs} reduction jobs; {total:.1f} s to the summary"]  # fmt: skip
    rows = [
        ("bring-up (broker, 7 component processes, ready on the bus)", ready),
        ("adding the blocks (13 script processes started and configured)", queued),
        ("simulated waits (the scripts' estimates / speed)", simulated),
        (f"FITS writes ({len(writes)} files; overlap the simulated readouts)", sum(writes) / 1e3),
        (f"reduction jobs ({jobs}, 2 workers; mostly overlap the image taking)", job_s),
    ]
    out += [f"  {label:<68} {seconds:6.1f} s" for label, seconds in rows]
    out.append(f"  {'the rest: waits on reduction, framework, messages, summary and report':<68} "
               f"{total - ready - queued - simulated:6.1f} s (after bring-up, adding and simulated waits)")  # fmt: skip
    return out


async def run_weekly_benchmark(options: WeeklyBenchOptions) -> int:
    """The `obsq bench weekly` command."""
    folder = options.folder or Path(tempfile.mkdtemp(prefix="obsq-bench-weekly-"))
    folder.mkdir(parents=True, exist_ok=True)
    before = set(folder.glob("weekly-*"))
    view = _Recorder()
    code = 1  # until run_weekly returns: an exception out of it is a failure too
    try:
        code = await run_weekly(WeeklyOptions(Connection(), speed=options.speed, data=folder), view)
    finally:
        run = max(set(folder.glob("weekly-*")) - before, default=None)  # this run's: the folder may hold others
        print("\n".join(_breakdown(view, run, options, code)))
        if code != 0:
            print("\n".join(failure_report(view.summary_data, view.lines, run, folder)))
        elif options.folder is None:
            shutil.rmtree(folder)
        else:
            print(f"kept: {run or folder}")
    return code
