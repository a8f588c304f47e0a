"""An OCPS worker process: `python -m obsq.csc.ocps.worker REPO JOBS REGISTRY`, one job at a time.

JOBS and REGISTRY are the job table and the calibration registry, each a path or a URL.

The reduction service keeps a few of these running, so a job starts at once instead of paying
for the numeric stack's imports. The worker reads job ids from stdin, one per line; for each it
runs the pipeline, records the outcome in the job table itself (a result is kept even if the
service is gone by then), and answers `done JOB_ID` on stdout (progress lines go there too, as
`progress JOB_ID STAGE D/T`). An error the pipeline names (bad input, a refused repository
operation) is a FAILED job with that message; anything else is FAILED with the exception's
text and its traceback on stderr. The worker ends at the end of its input, and when the
service that started it dies.
"""

from __future__ import annotations

import os
import sys
import threading
import traceback

from obsq.csc.clock import blocking_sleep, utc_now_unix, wall_tai
from obsq.csc.ocps import catalog, pipelines
from obsq.csc.ocps.jobs import JobStore
from obsq.csc.ocps.repository import Repository, RepositoryError
from obsq.csc.reduction.frames import FrameError

PARENT_POLL_S = 0.5
#: The exit status of a worker whose service died.
ORPHANED = 3


def _exit_with_parent() -> None:
    parent = os.getppid()
    while os.getppid() == parent:
        blocking_sleep(PARENT_POLL_S)
    os._exit(ORPHANED)


def run_job(store: JobStore, repo: Repository, job_id: str) -> bool:
    """Run one job and record its outcome; True if it is DONE."""
    job = store.get(job_id)

    def progress(stage: str, done: int, total: int) -> None:
        print(f"progress {job_id} {stage} {done}/{total}", flush=True)

    # a job run again after its worker died: a pipeline returns what the earlier run had made already
    config = (job.config | {"rerun": True}) if job.attempts > 1 else job.config
    try:
        result = catalog.run(job.pipeline, repo, config, progress, job=job_id)
    except (pipelines.PipelineError, RepositoryError, FrameError, KeyError, TypeError, ValueError) as exc:
        store.finish(job_id, ok=False, result={"error": str(exc)}, now=wall_tai())
        print(f"{job_id} FAILED: {exc}", file=sys.stderr, flush=True)
        return False
    except Exception as exc:  # a job's crash is its result, reported in full
        traceback.print_exc()
        store.finish(job_id, ok=False, result={"error": f"{type(exc).__name__}: {exc}"}, now=wall_tai())
        return False
    store.finish(job_id, ok=True, result=result, now=wall_tai())
    return True


def main(argv: list[str]) -> int:
    repo_dir, jobs, calibration = argv
    store = JobStore(jobs)
    repo = Repository(repo_dir, now=utc_now_unix, database=calibration)
    threading.Thread(target=_exit_with_parent, daemon=True).start()
    print("ready", flush=True)
    for line in sys.stdin:
        job_id = line.strip()
        if job_id:
            run_job(store, repo, job_id)
            print(f"done {job_id}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
