"""Running reduction jobs from a script: `execute` on OCPS:1 and wait for that job's `job_result`."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
from typing import Any

from obsq.csc.component import Remote
from obsq.csc.core.errors import ExpectedError, ObsqError

MJD_EPOCH = datetime.date(1858, 11, 17)


def date_to_mjd(text: str) -> float:
    """`YYYY-MM-DD` (a script configuration's certification dates) as an MJD."""
    try:
        return float((datetime.date.fromisoformat(text) - MJD_EPOCH).days)
    except ValueError:
        raise ExpectedError(f"date {text!r} is not of the form YYYY-MM-DD") from None


class JobFailedError(ExpectedError):
    """A reduction job ended FAILED; the message is the job's reason."""


class Ocps:
    """OCPS:1 seen from a script."""

    def __init__(self, remote: Remote) -> None:
        self.remote = remote
        self._results: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._early: dict[str, dict[str, Any]] = {}
        self._asking: set[asyncio.Task[None]] = set()
        remote.event("job_result").callback = self._on_result
        remote.bus.add_connection_listener(self._on_link)

    def _on_link(self, connected: bool) -> None:
        """After a broker outage the results published meanwhile are lost: ask for each job awaited."""
        if connected and self._results:
            task = asyncio.get_running_loop().create_task(self._ask_again(list(self._results)), name="ocps.showJob")
            self._asking.add(task)
            task.add_done_callback(self._asking.discard)

    async def _ask_again(self, job_ids: list[str]) -> None:
        for job_id in job_ids:
            with contextlib.suppress(ObsqError):  # a job still running answers later with its job_result
                await self.remote.command("showJob", {"job_id": job_id}, timeout_s=60)

    def _on_result(self, envelope: Any) -> None:
        data = envelope.data
        future = self._results.get(data["job_id"])
        if future is not None and not future.done():
            future.set_result(data)
        else:
            self._early[data["job_id"]] = data

    async def _result(
        self, job_id: str, pipeline: str, future: asyncio.Future[dict[str, Any]], timeout_s: float
    ) -> dict[str, Any]:
        """The job's result, however long the reduction takes while OCPS:1 says the job is going.

        Every `timeout_s` real seconds without a result OCPS:1 is asked how the job stands: one it
        still has queued or running is waited for again (reduction is real work: a busy machine
        makes it slower, not failed); a job it does not know, or a service that does not answer,
        ends the wait.
        """
        while True:
            try:
                return await asyncio.wait_for(asyncio.shield(future), timeout_s)
            except TimeoutError:
                pass
            try:
                state = (await self.remote.command("showJob", {"job_id": job_id}, timeout_s=60)).result
            except ObsqError as exc:
                raise ExpectedError(f"OCPS job {job_id} ({pipeline}): no result within {timeout_s:g} s, and OCPS:1 "
                                    f"does not say how it stands: {exc}") from None  # fmt: skip
            if state not in ("QUEUED", "RUNNING", "DONE", "FAILED"):
                raise ExpectedError(f"OCPS job {job_id} ({pipeline}) gave no result within {timeout_s:g} s ({state})")
            # still going; or ended, and showJob has just published its result again

    async def run(self, pipeline: str, config: dict[str, Any], timeout_s: float = 1800.0) -> dict[str, Any]:
        """Run one job and return its result; JobFailedError if it failed."""
        ack = await self.remote.command("execute", {"pipeline": pipeline, "config": json.dumps(config)}, timeout_s=60)
        job_id = ack.result
        future = self._results.setdefault(job_id, asyncio.get_running_loop().create_future())
        if job_id in self._early:
            future.set_result(self._early.pop(job_id))
        try:
            data = await self._result(job_id, pipeline, future, timeout_s)
        finally:
            self._results.pop(job_id, None)
        result = json.loads(data["result"] or "{}")
        if data["exit_code"] != 0:
            raise JobFailedError(f"OCPS job {job_id} ({pipeline}) failed: {result.get('error', 'no reason given')}")
        return dict(result) | {"job_id": job_id}
