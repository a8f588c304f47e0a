"""OCPS:1 with real worker processes: jobs, results, crashes, bad requests, and a restart."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from obsq.csc.atcamera.model import GEOMETRIES, DetectorModel
from obsq.csc.clock import utc_now_unix
from obsq.csc.component import AckError
from obsq.csc.ocps.csc import MAX_JOB_ATTEMPTS, OCPSCsc
from obsq.csc.ocps.jobs import JobStore
from obsq.csc.ocps.repository import Repository
from obsq.csc.testing import Rig, component_rig
from tests.unit.test_pipelines import Camera

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def detector() -> DetectorModel:
    return DetectorModel(GEOMETRIES["small"], seed=11)


def make(data: Path, **kwargs: Any) -> OCPSCsc:
    return OCPSCsc(data_dir=data, **kwargs)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with component_rig(functools.partial(make, tmp_path / "data"), "OCPS:1") as rig:
        await rig.enable()
        yield rig


async def result_of(rig: Rig, job_id: str, timeout_s: float = 60.0) -> dict[str, Any]:
    found: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    def on_result(envelope: Any) -> None:
        if envelope.data["job_id"] == job_id and not found.done():
            found.set_result(envelope.data)

    rig.remote.event("job_result").callback = on_result
    last = rig.remote.event("job_result").get_envelope()
    if last is not None:  # it may have come before this call
        on_result(last)
    try:
        return await asyncio.wait_for(found, timeout_s)
    finally:
        rig.remote.event("job_result").callback = None


async def execute(rig: Rig, pipeline: str, config: dict[str, Any]) -> str:
    acks: list[Any] = []
    ack = await rig.remote.command("execute", {"pipeline": pipeline, "config": json.dumps(config)}, on_ack=acks.append)
    assert acks[0].ack.name == "INPROGRESS"  # at once: the job table is being written
    assert [a.result for a in acks if a.ack.name == "INPROGRESS"][-1] == ack.result  # then the job id
    return ack.result


async def test_jobs_run_in_workers_and_report(rig: Rig, tmp_path: Path, detector: DetectorModel) -> None:
    camera = Camera(detector, tmp_path)
    biases = [camera.take("BIAS", 0.0) for _ in range(5)]
    job = await execute(rig, "cpBias", {"inputs": biases})
    result = await result_of(rig, job)
    assert result["exit_code"] == 0, result
    product = json.loads(result["result"])["product"]
    assert Repository(tmp_path / "data" / "repo", now=utc_now_unix).product(product).type == "bias"
    # a pipeline error is a FAILED job with the reason, not a crash of the service
    flats = [camera.take("FLAT", 6.0) for _ in range(2)]
    failed = await result_of(rig, await execute(rig, "cpDark", {"inputs": flats}))
    assert failed["exit_code"] == 1
    assert "is a FLAT, not a DARK" in json.loads(failed["result"])["error"]


async def test_bad_requests_are_refused_at_the_door(rig: Rig) -> None:
    with pytest.raises(AckError, match="pipeline 'cpNothing' is not one of cpBias"):
        await rig.remote.command("execute", {"pipeline": "cpNothing", "config": "{}"})
    with pytest.raises(AckError, match="config is not JSON"):
        await rig.remote.command("execute", {"pipeline": "cpBias", "config": "{inputs:"})
    with pytest.raises(AckError, match="cpVerifyBias config: field 'product' is required"):
        await rig.remote.command("execute", {"pipeline": "cpVerifyBias", "config": '{"inputs": ["a.fits"]}'})
    with pytest.raises(AckError, match=r"certify config: field 'product': 'x' is not of type 'integer' \(rule: type\)"):
        await rig.remote.command(
            "execute", {"pipeline": "certify", "config": '{"product": "x", "begin_mjd": 1, "end_mjd": 2}'}
        )
    with pytest.raises(AckError, match=r"NaN is not a JSON number \(rule: finite numbers\)"):
        await rig.remote.command(
            "execute", {"pipeline": "certify", "config": '{"product": 1, "begin_mjd": NaN, "end_mjd": 2}'}
        )
    with pytest.raises(AckError, match=r"cpVerifyCounts config: field 'planned/0': 'r' is not of type 'object'"):
        await rig.remote.command(
            "execute", {"pipeline": "cpVerifyCounts", "config": '{"planned": ["r"], "groupid": "g"}'}
        )
    assert rig.csc.store.jobs() == []  # type: ignore[attr-defined]


async def kill_the_worker_running(csc: OCPSCsc, job: str) -> None:
    """SIGKILL of the worker process running `job`, once one runs it."""
    for _ in range(3000):
        running = [w for w in csc._workers if w.job == job and w.process.returncode is None]
        if running:
            running[0].process.kill()
            await running[0].process.wait()
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"no worker ran {job}")


async def test_a_job_whose_worker_is_killed_runs_again_on_another(
    rig: Rig, tmp_path: Path, detector: DetectorModel
) -> None:
    camera = Camera(detector, tmp_path)
    biases = [camera.take("BIAS", 0.0) for _ in range(3)]
    csc: OCPSCsc = rig.csc  # type: ignore[assignment]
    job = await execute(rig, "cpBias", {"inputs": biases})
    await kill_the_worker_running(csc, job)
    result = await result_of(rig, job)
    assert result["exit_code"] == 0, result  # the same job, run again: its master is made
    product = json.loads(result["result"])["product"]
    assert csc.store.get(job).attempts == 2
    assert [p.id for p in Repository(tmp_path / "data" / "repo", now=utc_now_unix).products(type_="bias")] == [product]


async def test_a_job_whose_workers_keep_dying_fails_naming_the_deaths(
    rig: Rig, tmp_path: Path, detector: DetectorModel
) -> None:
    camera = Camera(detector, tmp_path)
    biases = [camera.take("BIAS", 0.0) for _ in range(3)]
    csc: OCPSCsc = rig.csc  # type: ignore[assignment]
    job = await execute(rig, "cpBias", {"inputs": biases})
    for _ in range(MAX_JOB_ATTEMPTS):
        await kill_the_worker_running(csc, job)
    result = await result_of(rig, job)
    assert result["exit_code"] != 0
    error = json.loads(result["result"])["error"]
    assert "worker exited with code -9" in error
    assert f"after {MAX_JOB_ATTEMPTS} runs" in error
    # the workers are replaced: the next job runs
    again = await result_of(rig, await execute(rig, "cpBias", {"inputs": biases}))
    assert again["exit_code"] == 0, again


async def test_jobs_survive_a_restart(tmp_path: Path, detector: DetectorModel) -> None:
    camera = Camera(detector, tmp_path)
    biases = [camera.take("BIAS", 0.0) for _ in range(3)]
    data = tmp_path / "data"
    store = JobStore(data / "repo" / "jobs.sqlite3")
    done = store.add("cpBias", {"inputs": biases}, 0.0)
    store.start(done.id, 1.0)
    store.finish(done.id, ok=True, result={"product": 99}, now=2.0)
    interrupted = store.add("cpBias", {"inputs": biases}, 3.0)
    store.start(interrupted.id, 4.0)  # its service died while it ran
    async with component_rig(functools.partial(make, data), "OCPS:1") as rig:
        result = await result_of(rig, interrupted.id)
        assert result["exit_code"] == 0
        ack = await rig.remote.command("showJob", {"job_id": done.id})
        assert ack.result == "DONE"
        assert rig.remote.event("job_result").get()["job_id"] == done.id
    assert store.get(interrupted.id).attempts == 2


async def test_jobs_asked_for_at_once_each_get_their_own_id(rig: Rig, tmp_path: Path, detector: DetectorModel) -> None:
    """execute is concurrent and the job table is written off the event loop: two at once never share a number."""
    camera = Camera(detector, tmp_path)
    biases = [camera.take("BIAS", 0.0) for _ in range(3)]
    jobs = await asyncio.gather(*(execute(rig, "cpBias", {"inputs": biases, "force": True}) for _ in range(8)))
    assert len(set(jobs)) == 8


async def test_prereq_jobs_wait_and_output_dataset_types_are_captured(
    rig: Rig, tmp_path: Path, detector: DetectorModel
) -> None:
    """Rubin's execute fields: a job waits for its prereq_jobs, fails if one did, and names what it captured."""
    camera = Camera(detector, tmp_path)
    biases = [camera.take("BIAS", 0.0) for _ in range(5)]
    flats = [camera.take("FLAT", 6.0) for _ in range(2)]
    results: dict[str, dict[str, Any]] = {}
    rig.remote.event("job_result").callback = lambda envelope: results.setdefault(envelope.data["job_id"],
                                                                                    envelope.data)  # fmt: skip
    bad = await execute(rig, "cpDark", {"inputs": flats})  # fails: flats are no darks
    good = await execute(rig, "cpBias", {"inputs": biases})
    after_good = await rig.remote.command("execute", {
        "pipeline": "cpBias", "config": json.dumps({"inputs": biases, "force": True}), "prereq_jobs": good,
        "output_dataset_types": "bias*, ptc"})  # fmt: skip
    after_bad = await rig.remote.command("execute", {
        "pipeline": "cpBias", "config": json.dumps({"inputs": biases}), "prereq_jobs": f"{good}, {bad}"})  # fmt: skip
    for _ in range(6000):  # bounds a hang only
        if {good, after_good.result, after_bad.result} <= set(results):
            break
        await asyncio.sleep(0.01)
    first, second, refused = results[good], results[after_good.result], results[after_bad.result]
    assert second["exit_code"] == 0, second
    captured = json.loads(second["result"])
    assert (captured["output_dataset_types"], captured["captured"]) == (["bias*", "ptc"], ["bias"])
    store = rig.csc.store  # type: ignore[attr-defined]
    assert store.get(after_good.result).started >= store.get(good).finished  # it waited for its prerequisite
    assert first["exit_code"] == 0
    assert refused["exit_code"] == 1
    assert json.loads(refused["result"])["error"] == f"prerequisite job {bad} failed: {after_bad.result} was not run"
    with pytest.raises(AckError, match="prereq_jobs: no job 'ocps-999999'"):
        await rig.remote.command("execute", {"pipeline": "cpBias", "config": json.dumps({"inputs": biases}),
                                             "prereq_jobs": "ocps-999999"})  # fmt: skip
