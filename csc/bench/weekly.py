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
"""

from __future__ import annotations

import re
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

    def line(self, text: str) -> None:
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


def _left_behind(folder: Path, speed: float) -> tuple[list[float], int, float, float]:
    """FITS write times, the number of jobs and their seconds, and the simulated waits, from the run's folder."""
    (run,) = folder.glob("weekly-*")
    registries = Registries.at(run)
    jobs, job_s = _job_seconds(registries)
    return _write_ms(run / "logs" / "ATCamera.log"), jobs, job_s, _simulated_s(registries, speed)


async def run_weekly_benchmark(options: WeeklyBenchOptions) -> int:
    """The `obsq bench weekly` command."""
    with tempfile.TemporaryDirectory(dir=options.folder) as tmp:
        view = _Recorder()
        code = await run_weekly(WeeklyOptions(Connection(), speed=options.speed, data=Path(tmp)), view)
        total = view.marks.get("summary", perf_counter() - view.t0)
        writes, jobs, job_s, simulated = _left_behind(Path(tmp), options.speed)
    ready = view.marks.get("ready", 0.0)
    queued = view.marks.get("queued", ready) - ready
    images = sum(row["count"] for row in view.summary_data.get("images", []))
    print(f"obsq weekly at speed {options.speed:g}: {'passed' if code == 0 else 'FAILED'}, {images} images, "
          f"{jobs} reduction jobs; {total:.1f} s to the summary")  # fmt: skip
    rows = [
        ("bring-up (broker, 7 component processes, ready on the bus)", ready),
        ("adding the blocks (13 script processes started and configured)", queued),
        ("simulated waits (the scripts' estimates / speed)", simulated),
        (f"FITS writes ({len(writes)} files; overlap the simulated readouts)", sum(writes) / 1e3),
        (f"reduction jobs ({jobs}, 2 workers; mostly overlap the image taking)", job_s),
    ]
    for label, seconds in rows:
        print(f"  {label:<68} {seconds:6.1f} s")
    print(f"  {'the rest: waits on reduction, framework, messages, summary and report':<68} "
          f"{total - ready - queued - simulated:6.1f} s (after bring-up, adding and simulated waits)")  # fmt: skip
    return code
