"""OCPS:1, the reduction service: `execute(pipeline, config)` runs a pipeline as a job in a worker process.

`execute` is checked at the door (a known pipeline, a JSON object with that pipeline's fields,
`catalog.py`), recorded as a QUEUED job, acknowledged INPROGRESS with the job id, and completed
with the job id as its result, as Rubin's OCPS does; the outcome comes later as a `job_result`
event. `max_jobs` worker processes (`worker.py`) are kept running, each one job at a time, so a
job starts without paying for the numeric stack's imports; a worker that dies is replaced, and
its job (idempotent: the same inputs make the same product) runs again on another worker, up to
MAX_JOB_ATTEMPTS runs in all; after that it fails with the worker's exit status and the last
lines it wrote. The event loop only waits on
processes. Jobs and results live in `<data>/repo/jobs.sqlite3` (times in wall-clock TAI: jobs
run in real time whatever the simulation speed), so they survive a restart: unfinished jobs run
again and `showJob` republishes any job's result.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fnmatch
import functools
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from obsq.csc.clock import wall_tai
from obsq.csc.component import BaseCsc, Command
from obsq.csc.core.errors import ExpectedError
from obsq.csc.database import DatabaseError, Registries
from obsq.csc.ocps.catalog import READS_REGISTRIES, parse_request
from obsq.csc.ocps.jobs import Job, JobStore

#: How long a caller should wait for a job's acknowledgement to complete (s).
ACCEPT_TIMEOUT_S = 30.0
#: Lines of a worker's stderr kept to explain its death.
STDERR_LINES = 20
#: Real seconds before replacing a worker that died before it was ready.
WORKER_RESPAWN_DELAY_S = 5.0
#: Runs of a job whose worker died (a kill, the machine out of memory) before it fails.
MAX_JOB_ATTEMPTS = 3
#: Real seconds between two tries to reach a job table that is away.
DISPATCH_RETRY_S = 2.0


MAX_LISTED = 100


def _listed(text: str, field_name: str) -> list[str]:
    """A comma-separated field's items (blanks dropped); ExpectedError if more than MAX_LISTED."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if len(items) > MAX_LISTED:
        raise ExpectedError(f"execute: {field_name}: {len(items)} items, more than {MAX_LISTED} (rule: maxItems)")
    return items


def _captured(job: Job) -> str:
    """A job's result, and with output_dataset_types the dataset types it made that match them (`captured`).

    A job's dataset type is the type of the product it made (bias, dark, flat, ptc) or, for the
    others, its pipeline's name.
    """
    patterns = job.config.get("output_dataset_types", [])
    if not patterns:
        return job.result
    try:
        result = json.loads(job.result or "{}")
    except json.JSONDecodeError:
        return job.result
    made = [str(result["type"])] if isinstance(result, dict) and result.get("type") else [job.pipeline]
    captured = sorted({name for name in made if any(fnmatch.fnmatchcase(name, p) for p in patterns)})
    if not isinstance(result, dict):
        return job.result
    return json.dumps(result | {"output_dataset_types": patterns, "captured": captured})


@dataclass
class _Worker:
    """One worker process and the job it runs (None while idle)."""

    process: asyncio.subprocess.Process
    job: str | None = None
    ready: bool = False
    stderr: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=STDERR_LINES))


class OCPSCsc(BaseCsc):
    """The reduction service."""

    def __init__(
        self, *, data_dir: Path, index: int = 1, max_jobs: int = 2, database: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__("OCPS", index=index, **kwargs)
        self.data_dir = Path(data_dir).absolute()
        self.repo_dir = self.data_dir / "repo"
        self.registries = Registries.at(self.data_dir, database)
        self.store = JobStore(self.registries.jobs)
        self.max_jobs = max_jobs
        self._wakeup = asyncio.Event()
        self._adding = asyncio.Lock()
        self._handing = asyncio.Lock()
        self._workers: list[_Worker] = []
        self.register_command("execute", self._do_execute, concurrent=True)
        self.register_command("showJob", self._do_show_job, require_enabled=False, concurrent=True)

    async def _on_started(self) -> None:
        again = await self.clock.to_thread(self.store.requeue_unfinished)  # waits out a database outage
        if again:
            self.log.warning("jobs_requeued_after_restart", jobs=",".join(again))
        for _ in range(self.max_jobs):
            await self._spawn_worker()
        self.create_task(self._dispatch(), "ocps.dispatch")
        await super()._on_started()

    async def _do_execute(self, command: Command) -> str:
        config = parse_request(command.data["pipeline"], command.data["config"])
        prereq = _listed(command.data.get("prereq_jobs", ""), "prereq_jobs")
        patterns = _listed(command.data.get("output_dataset_types", ""), "output_dataset_types")
        if prereq:  # every one a job of the table, named at the door
            reading = self.keep_alive(command, lambda: "reading the prerequisite jobs (the job table)")
            async with reading:
                known = {job.id for job in await self.clock.to_thread(self.store.jobs)}
            unknown = [job_id for job_id in prereq if job_id not in known]
            if unknown:
                raise ExpectedError(f"execute: prereq_jobs: no job {unknown[0][:64]!r} (rule: a job of this OCPS)")
            config["prereq_jobs"] = prereq
        if patterns:
            config["output_dataset_types"] = patterns
        if command.data["pipeline"] == "cpVerifyCounts":  # the camera's registry, in the same data folder
            config.setdefault("registry", self.registries.acquired)
        if command.data["pipeline"] in READS_REGISTRIES:  # this service's own registries, never a client's path
            config |= {"registry": self.registries.acquired, "jobs": self.registries.jobs}
        pipeline = command.data["pipeline"]
        # the job table may wait out a database outage (up to minutes): the caller hears INPROGRESS meanwhile
        adding = self.keep_alive(command, lambda: f"adding a {pipeline} job (the job table)")
        async with adding, self._adding:  # one at a time: a job's number is the table's largest plus one
            job = await self.clock.to_thread(self.store.add, pipeline, config, wall_tai())
        await command.in_progress(ACCEPT_TIMEOUT_S, result=job.id)
        self.log.info("job_queued", job=job.id, pipeline=job.pipeline)
        self._wakeup.set()
        return job.id

    async def _do_show_job(self, command: Command) -> str:
        job_id = command.data["job_id"]
        reading = self.keep_alive(command, lambda: f"reading job {job_id[:64]} (the job table)")
        try:
            async with reading:
                job = await self.clock.to_thread(self.store.get, job_id)
        except KeyError as exc:
            raise ExpectedError(f"showJob: {exc.args[0]}") from None
        if job.state in ("DONE", "FAILED"):
            await self._publish_result(job, force=True)  # asked for: sent even if it was the last one sent
        return job.state

    async def _publish_result(self, job: Job, *, force: bool = False) -> None:
        code = job.exit_code if job.exit_code is not None else (0 if job.finished_ok else 1)
        await self.publish_event(
            "job_result",
            {"job_id": job.id, "exit_code": code, "result": _captured(job), "pipeline": job.pipeline},
            force=force,
        )

    # -- workers -------------------------------------------------------------------------------

    async def _spawn_worker(self) -> None:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "obsq.csc.ocps.worker", str(self.repo_dir), self.registries.jobs,
            self.registries.calibration,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        worker = _Worker(process)
        self._workers.append(worker)
        self.create_task(self._watch(worker), f"ocps.worker.{process.pid}")

    def _idle(self) -> list[_Worker]:
        return [w for w in self._workers if w.ready and w.job is None and w.process.returncode is None]

    async def _dispatch(self) -> None:
        """Hand QUEUED jobs to idle workers; woken by a new job, a worker that is ready and a job run again.

        The wakeup is cleared before the job table is read, never after: one that comes while this
        pass awaits the table is kept for the next pass (clearing it after lost the job a dead
        worker's retry put back, and the weekly waited for it for ever). A job is handed out under
        `_handing`, which a dead worker's watcher takes too: the job is either the dead worker's,
        and runs again, or it is still QUEUED.
        """
        while True:
            self._wakeup.clear()
            try:
                queued = await self.clock.to_thread(self.store.jobs, "QUEUED") if self._idle() else []
                waiting = any(job.config.get("prereq_jobs") for job in queued)  # the table read once a pass for them
                states = {j.id: j.state for j in await self.clock.to_thread(self.store.jobs)} if waiting else {}
            except DatabaseError as exc:  # the job table is away: the jobs wait in it, the service lives on
                self.log.error("jobs_not_dispatched", reason=str(exc), retry_in_s=DISPATCH_RETRY_S)
                await self.clock.unscaled().sleep(DISPATCH_RETRY_S)
                continue
            for job in queued:
                if not await self._prerequisites_met(job, states):
                    continue
                async with self._handing:
                    idle = self._idle()  # again: a worker may have died while the table was read
                    if not idle:
                        break
                    worker = idle[0]
                    try:
                        await self.clock.to_thread(self.store.start, job.id, wall_tai())
                    except DatabaseError as exc:  # still QUEUED: handed out again once the table answers
                        self.log.error("job_not_started", job=job.id, reason=str(exc), retry_in_s=DISPATCH_RETRY_S)
                        self.create_task(self._wake_after(DISPATCH_RETRY_S), "ocps.dispatch.again")
                        break
                    worker.job = job.id
                    assert worker.process.stdin is not None
                    worker.process.stdin.write(f"{job.id}\n".encode())
                with contextlib.suppress(ConnectionError):  # a worker that died: its watcher runs the job again
                    await worker.process.stdin.drain()
            await self._wakeup.wait()

    async def _prerequisites_met(self, job: Job, states: dict[str, str]) -> bool:
        """Whether a QUEUED job may run: every prereq_jobs DONE (`states`: the job table's). One FAILED fails it."""
        prereq = job.config.get("prereq_jobs", [])
        if not prereq:
            return True
        failed = [job_id for job_id in prereq if states.get(job_id) == "FAILED"]
        if failed:
            result = {"error": f"prerequisite job {failed[0]} failed: {job.id} was not run"}
            try:
                await self.clock.to_thread(self.store.start, job.id, wall_tai())
                await self.clock.to_thread(functools.partial(self.store.finish, job.id, ok=False, result=result,
                                                             now=wall_tai()))  # fmt: skip
            except DatabaseError as exc:  # still QUEUED (or RUNNING, run again after a restart): failed next pass
                self.log.error("job_not_failed", job=job.id, reason=str(exc), retry_in_s=DISPATCH_RETRY_S)
                self.create_task(self._wake_after(DISPATCH_RETRY_S), "ocps.dispatch.again")
                return False
            await self._publish_result(await self._job(job.id))
            return False
        return all(states.get(job_id) == "DONE" for job_id in prereq)

    async def _wake_after(self, seconds: float) -> None:
        await self.clock.unscaled().sleep(seconds)
        self._wakeup.set()

    async def _watch(self, worker: _Worker) -> None:
        """Read a worker's answers until it ends; fail its job and replace it if it dies."""
        process = worker.process
        assert process.stdout is not None
        assert process.stderr is not None
        errors = self.create_task(self._read_stderr(worker), f"ocps.worker.{process.pid}.stderr")
        async for line in process.stdout:
            text = line.decode(errors="replace").strip()
            if text == "ready":
                worker.ready = True
                self._wakeup.set()
            elif text.startswith("progress "):
                self.log.debug("job_progress", job=worker.job, progress=text.split(" ", 2)[-1])
            elif text.startswith("done ") and worker.job is not None:
                job, worker.job = await self._job(text.removeprefix("done ")), None
                self.log.info("job_finished", job=job.id, state=job.state)
                await self._publish_result(job)
                self._wakeup.set()
        code = await process.wait()
        await errors
        async with self._handing:  # a job being handed to it is either its own now, or not handed to it
            self._workers.remove(worker)
        if self._closing.is_set():
            return  # its job, if any, stays RUNNING: the next start of the service runs it again
        if worker.job is not None:  # it died running a job, before it could record anything
            try:
                await self._worker_died(worker, code)
            except DatabaseError as exc:  # left RUNNING in the job table: the service's next start runs it again
                self.log.error("dead_worker_job_not_recorded", job=worker.job, reason=str(exc))
        if not worker.ready:  # it could not even start: say why, and do not spin
            self.log.error("worker_failed_to_start", exit_code=code, stderr=" | ".join(worker.stderr))
            await self.clock.unscaled().sleep(WORKER_RESPAWN_DELAY_S)
        await self._spawn_worker()

    async def _job(self, job_id: str) -> Job:
        """A job's row, read off the event loop; while the job table is away, asked again until it answers."""
        while True:
            try:
                return await self.clock.to_thread(self.store.get, job_id)
            except DatabaseError as exc:
                self.log.error("job_not_read", job=job_id, reason=str(exc), retry_in_s=DISPATCH_RETRY_S)
                await self.clock.unscaled().sleep(DISPATCH_RETRY_S)

    async def _worker_died(self, worker: _Worker, code: int) -> None:
        """Run the dead worker's job again on another worker, or fail it once it has had its runs."""
        assert worker.job is not None
        tail = list(worker.stderr)[-3:]
        reason = f"worker exited with code {code}" + (f": {' | '.join(tail)}" if tail else "")
        if await self.clock.to_thread(functools.partial(self.store.retry, worker.job, max_attempts=MAX_JOB_ATTEMPTS)):
            self.log.warning("worker_died_job_retried", job=worker.job, exit_code=code, reason=reason)
            self._wakeup.set()
            return
        await self.clock.to_thread(functools.partial(
            self.store.finish, worker.job, ok=False, now=wall_tai(), exit_code=code or 1,
            result={"error": f"{reason} (after {MAX_JOB_ATTEMPTS} runs, each ended by its worker's death)"},
        ))  # fmt: skip
        job = await self._job(worker.job)
        self.log.error("worker_died_job_failed", job=job.id, exit_code=code, attempts=job.attempts)
        await self._publish_result(job)

    async def _read_stderr(self, worker: _Worker) -> None:
        assert worker.process.stderr is not None
        async for line in worker.process.stderr:
            worker.stderr.append(line.decode(errors="replace").rstrip())

    async def _publish_goodbye(self) -> None:
        for worker in list(self._workers):
            if worker.process.returncode is None:
                worker.process.kill()
                await worker.process.wait()
        await super()._publish_goodbye()
