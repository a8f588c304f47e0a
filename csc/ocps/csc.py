"""OCPS:1, the reduction service: `execute(pipeline, config)` runs a pipeline as a job in a worker process.

`execute` is checked at the door (a known pipeline, a JSON object with that pipeline's fields),
recorded as a QUEUED job, acknowledged INPROGRESS with the job id, and completed with the job
id as its result, as Rubin's OCPS does; the outcome comes later as a `job_result` event. At
most `max_jobs` workers run at once; the event loop only waits on processes. Jobs and results
live in `<data>/repo/jobs.sqlite3` (times in wall-clock TAI: jobs run in real time whatever the
simulation speed), so they survive a restart: unfinished jobs run again and
`showJob` republishes any job's result.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from obsq.csc.clock import wall_tai
from obsq.csc.component import BaseCsc, Command
from obsq.csc.core.errors import ExpectedError
from obsq.csc.ocps.jobs import Job, JobStore
from obsq.csc.reduction.pipelines import PIPELINES

#: The configuration fields each pipeline needs (the pipelines check the values themselves).
REQUIRED: dict[str, tuple[str, ...]] = {
    "cpBias": ("inputs",), "cpDark": ("inputs",), "cpFlat": ("inputs",),
    "cpVerifyBias": ("product", "inputs"), "cpVerifyDark": ("product", "inputs"), "cpVerifyFlat": ("product", "inputs"),
    "cpFlatLevel": ("inputs",), "cpVerifyCounts": ("planned", "groupid"), "cpPtc": ("inputs",),
    "certify": ("product", "begin_mjd", "end_mjd"),
}  # fmt: skip
#: How long a caller should wait for a job's acknowledgement to complete (s).
ACCEPT_TIMEOUT_S = 30.0


def parse_request(pipeline: str, text: str) -> dict[str, Any]:
    """The `execute` fields checked: the pipeline is known, config is an object with its fields."""
    if pipeline not in PIPELINES:
        raise ExpectedError(f"execute: pipeline {pipeline!r} is not one of {', '.join(PIPELINES)}")
    try:
        config = json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        raise ExpectedError(f"execute: config is not JSON: {exc.msg} at character {exc.pos}") from None
    if not isinstance(config, dict):
        raise ExpectedError(f"execute: config must be a JSON object, not {type(config).__name__}")
    missing = [f for f in REQUIRED[pipeline] if f not in config]
    if missing:
        raise ExpectedError(f"execute: {pipeline} config lacks {', '.join(missing)}")
    if "inputs" in config and not (
        isinstance(config["inputs"], list) and all(isinstance(i, str) for i in config["inputs"])
    ):
        raise ExpectedError(f"execute: {pipeline} config field inputs must be a list of file paths")
    return config


class OCPSCsc(BaseCsc):
    """The reduction service."""

    def __init__(self, *, data_dir: Path, index: int = 1, max_jobs: int = 2, **kwargs: Any) -> None:
        super().__init__("OCPS", index=index, **kwargs)
        self.data_dir = Path(data_dir).absolute()
        self.repo_dir = self.data_dir / "repo"
        self.store = JobStore(self.repo_dir / "jobs.sqlite3")
        self.max_jobs = max_jobs
        self._wakeup = asyncio.Event()
        self._running: dict[str, asyncio.subprocess.Process] = {}
        self.register_command("execute", self._do_execute, concurrent=True)
        self.register_command("showJob", self._do_show_job, require_enabled=False, concurrent=True)

    async def _on_started(self) -> None:
        again = self.store.requeue_unfinished()
        if again:
            self.log.warning("jobs_requeued_after_restart", jobs=",".join(again))
        self.create_task(self._dispatch(), "ocps.dispatch")
        await super()._on_started()

    async def _do_execute(self, command: Command) -> str:
        config = parse_request(command.data["pipeline"], command.data["config"])
        if command.data["pipeline"] == "cpVerifyCounts":  # the camera's registry, in the same data folder
            config.setdefault("registry", str(self.data_dir / "registry.sqlite3"))
        job = self.store.add(command.data["pipeline"], config, wall_tai())
        await command.in_progress(ACCEPT_TIMEOUT_S, result=job.id)
        self.log.info("job_queued", job=job.id, pipeline=job.pipeline)
        self._wakeup.set()
        return job.id

    async def _do_show_job(self, command: Command) -> str:
        try:
            job = self.store.get(command.data["job_id"])
        except KeyError as exc:
            raise ExpectedError(f"showJob: {exc.args[0]}") from None
        if job.state in ("DONE", "FAILED"):
            await self._publish_result(job)
        return job.state

    async def _publish_result(self, job: Job) -> None:
        code = job.exit_code if job.exit_code is not None else (0 if job.finished_ok else 1)
        await self.publish_event(
            "job_result", {"job_id": job.id, "exit_code": code, "result": job.result, "pipeline": job.pipeline}
        )

    async def _dispatch(self) -> None:
        while True:
            queued = self.store.jobs("QUEUED")
            for job in queued[: max(0, self.max_jobs - len(self._running))]:
                self.store.start(job.id, wall_tai())
                self._running[job.id] = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "obsq.csc.ocps.worker", str(self.repo_dir), str(self.store.path), job.id,
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                )  # fmt: skip
                self.create_task(self._watch(job.id), f"ocps.job.{job.id}")
            self._wakeup.clear()
            await self._wakeup.wait()

    async def _watch(self, job_id: str) -> None:
        process = self._running[job_id]
        assert process.stdout is not None
        assert process.stderr is not None
        errors = asyncio.ensure_future(process.stderr.read())
        async for line in process.stdout:
            text = line.decode(errors="replace").strip()
            if text.startswith("progress "):
                self.log.debug("job_progress", job=job_id, progress=text.split(" ", 2)[-1])
        stderr = await errors
        code = await process.wait()
        del self._running[job_id]
        job = self.store.get(job_id)
        if job.state == "RUNNING":  # the worker died before it could record anything
            tail = stderr.decode(errors="replace").strip().splitlines()[-3:]
            reason = f"worker exited with code {code}" + (f": {' | '.join(tail)}" if tail else "")
            self.store.finish(job_id, ok=False, result={"error": reason}, now=wall_tai(), exit_code=code or 1)
            job = self.store.get(job_id)
        self.log.info("job_finished", job=job_id, state=job.state, exit_code=job.exit_code)
        await self._publish_result(job)
        self._wakeup.set()
