"""One OCPS job in its own process: `python -m obsq.csc.ocps.worker REPO JOBS_DB JOB_ID`.

Runs the pipeline and records the outcome in the job table itself, so a result is kept even if
the service is gone by then. An error the pipeline names (bad input, a refused repository
operation) is a FAILED job with that message; anything else is FAILED with the traceback's last
line. The worker exits when the service that started it dies.
"""

from __future__ import annotations

import os
import sys
import threading
import traceback
from pathlib import Path

from obsq.csc.clock import blocking_sleep, wall_tai
from obsq.csc.ocps.jobs import JobStore
from obsq.csc.reduction import pipelines
from obsq.csc.reduction.frames import FrameError
from obsq.csc.reduction.repository import Repository, RepositoryError

PARENT_POLL_S = 0.5


def _exit_with_parent() -> None:
    parent = os.getppid()
    while os.getppid() == parent:
        blocking_sleep(PARENT_POLL_S)
    os._exit(3)


def main(argv: list[str]) -> int:
    repo_dir, jobs_db, job_id = argv
    store = JobStore(Path(jobs_db))
    job = store.get(job_id)
    threading.Thread(target=_exit_with_parent, daemon=True).start()

    def progress(stage: str, done: int, total: int) -> None:
        print(f"progress {job_id} {stage} {done}/{total}", flush=True)

    try:
        result = pipelines.run(job.pipeline, Repository(repo_dir), job.config, progress, job=job_id)
    except (pipelines.PipelineError, RepositoryError, FrameError, KeyError, TypeError) as exc:
        store.finish(job_id, ok=False, result={"error": str(exc)}, now=wall_tai())
        print(f"{job_id} FAILED: {exc}", file=sys.stderr, flush=True)
        return 1
    except Exception as exc:  # a job's crash is its result, reported in full
        traceback.print_exc()
        store.finish(job_id, ok=False, result={"error": f"{type(exc).__name__}: {exc}"}, now=wall_tai())
        return 2
    store.finish(job_id, ok=True, result=result, now=wall_tai())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
