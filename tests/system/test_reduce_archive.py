"""An archive of many nights (issue 25): `obsq reduce` builds its groups at once, locally or on a Dask cluster.

The cluster is Dask's own: `dask scheduler` and two `dask worker` processes on loopback, started
by the test from the same environment. A 30-night tree of biases gives 30 masters, the same
pixels from the cluster as from local processes; a rerun builds nothing; a group that fails on a
worker (darks with no dark time) fails alone, the other nights' darks are built. On the test's
own hosts (network namespaces) the workers of two other hosts and the registry on PostgreSQL
give the same masters.
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from obsq.csc.bus.brokers import free_port
from obsq.csc.cli import main

from .netns import Hosts
from .postgres import PostgresServer

pytestmark = [pytest.mark.system, pytest.mark.timeout(600)]
NIGHTS = 30
DASK = Path(sys.executable).parent / "dask"


def night_tree(
    root: Path, kind: str = "BIAS", exptime: float = 0.0, nights: int = NIGHTS, seed: int = 1, first: int = 0
) -> None:
    """`root/night-NN/` with 3 frames a night from 2026-10-01 + `first` days, each night's level; a night a group."""
    rng = np.random.default_rng(seed)
    for night in range(nights):
        folder = root / f"night-{first + night:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(3):
            when = datetime.datetime(2026, 10, 1, 20, 0) + datetime.timedelta(days=first + night, minutes=i)
            header = fits.Header({"IMAGETYP": kind, "EXPTIME": exptime, "DATE-OBS": when.isoformat(),
                                  "INSTRUME": "archive camera", "CCD-TEMP": -10.0})  # fmt: skip
            level = 1000 + night + (20 * exptime if kind == "DARK" else 0)
            data = (level + rng.normal(0, 5, (48, 64))).astype(np.uint16)
            fits.PrimaryHDU(data, header).writeto(folder / f"{kind.lower()}_{i}.fits")


def reduce(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, dict[str, str]]]:
    code = main(["reduce", *args, "--json"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    return code, {r["group"]: r for r in rows if "status" in r}


def masters(repo: Path) -> dict[str, np.ndarray[object, np.dtype[np.float32]]]:
    """Each master's pixels by the night it was made of (its DATE-OBS)."""
    found = {}
    for path in repo.rglob("master-*.fits"):
        with fits.open(path) as hdul:
            found[hdul[0].header["DATE-OBS"][:10]] = hdul[0].data.copy()
    return found


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[str]:
    if not DASK.exists():
        pytest.fail(f"{DASK} is missing: the test extras install dask[distributed]")
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    log = (tmp_path / "dask.log").open("ab")
    commands = [[str(DASK), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"]]
    commands += [
        [str(DASK), "worker", address, "--host", "127.0.0.1", "--nthreads", "1", "--no-dashboard",
         "--name", f"worker-{n}", "--local-directory", str(tmp_path / f"worker-{n}")]
        for n in range(2)
    ]  # fmt: skip
    processes = [
        subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp_path)
        for command in commands
    ]
    try:
        yield address
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30  # bounds a hang only
        for process in processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        log.close()


def test_thirty_nights_on_a_dask_cluster_give_the_local_run_s_masters(
    tmp_path: Path, cluster: str, capsys: pytest.CaptureFixture[str]
) -> None:
    night_tree(tmp_path / "archive")
    code, local = reduce(capsys, "bias", str(tmp_path / "archive"), "--repo", str(tmp_path / "local"), "--jobs", "2")
    assert code == 0
    assert len(local) == NIGHTS
    assert {r["status"] for r in local.values()} == {"built"}
    code, remote = reduce(capsys, "bias", str(tmp_path / "archive"), "--repo", str(tmp_path / "remote"),
                          "--scheduler", cluster)  # fmt: skip
    assert code == 0, remote
    assert {r["status"] for r in remote.values()} == {"built"}
    ours, theirs = masters(tmp_path / "local"), masters(tmp_path / "remote")
    assert len(ours) == NIGHTS
    assert ours.keys() == theirs.keys()
    for night, data in ours.items():
        np.testing.assert_array_equal(theirs[night], data)
    # a rerun builds only what is missing: nothing
    code, again = reduce(capsys, "bias", str(tmp_path / "archive"), "--repo", str(tmp_path / "remote"),
                         "--scheduler", cluster)  # fmt: skip
    assert code == 0
    assert {r["status"] for r in again.values()} == {"exists"}


def test_a_group_that_fails_on_a_worker_fails_alone(
    tmp_path: Path, cluster: str, capsys: pytest.CaptureFixture[str]
) -> None:
    night_tree(tmp_path / "archive", nights=3)
    night_tree(tmp_path / "archive" / "darks", "DARK", 60.0, nights=2, seed=2)
    night_tree(tmp_path / "archive" / "bad-darks", "DARK", 0.0, nights=1, seed=3, first=2)  # no dark time
    repo = str(tmp_path / "repo")
    assert reduce(capsys, "bias", str(tmp_path / "archive"), "--repo", repo, "--scheduler", cluster)[0] == 0
    code, darks = reduce(capsys, "dark", str(tmp_path / "archive"), "--repo", repo, "--scheduler", cluster)
    assert code == 1
    statuses = sorted(r["status"] for r in darks.values())
    assert statuses == ["built", "built", "failed"], darks
    (failed,) = [r for r in darks.values() if r["status"] == "failed"]
    assert "dark time 0.0 s cannot be scaled" in failed["detail"]


def test_an_unreachable_scheduler_is_refused_by_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    night_tree(tmp_path / "archive", nights=2)
    address = f"tcp://127.0.0.1:{free_port()}"
    code = main(["reduce", "bias", str(tmp_path / "archive"), "--repo", str(tmp_path / "repo"), "--scheduler",
                 address])  # fmt: skip
    assert code == 2
    assert f"the Dask scheduler {address} cannot be reached" in capsys.readouterr().err
    assert not list((tmp_path / "repo").rglob("*.fits"))


def test_an_archive_on_dask_workers_of_other_hosts_with_the_registry_on_postgresql(
    tmp_path: Path, hosts: Hosts, capsys: pytest.CaptureFixture[str]
) -> None:
    """The site's case: the scheduler and PostgreSQL on one host, a worker on each of two others.

    Hosts are the test's network namespaces (test_hosts.Hosts): b (10.199.1.1, 10.199.2.1) runs
    `dask scheduler`, PostgreSQL and the operator's `obsq reduce`; t (10.199.1.2) and q
    (10.199.2.2) a `dask worker` each. The folders are shared (the one file system, as NFS would
    share them). The masters equal a local run's, and the registry is PostgreSQL's alone.
    """
    night_tree(tmp_path / "archive", nights=6)
    assert reduce(capsys, "bias", str(tmp_path / "archive"), "--repo", str(tmp_path / "local"))[0] == 0
    server = PostgresServer(host="10.199.1.1", port=5432, clients="10.199.0.0/16", password=uuid.uuid4().hex)
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"10.199.1.1:5432:*:obsq:{server.password}\n")
    pgpass.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OBSQ_", "PG"))} | {"PGPASSFILE": str(pgpass)}
    log = (tmp_path / "dask.log").open("ab")
    processes: list[subprocess.Popen[bytes]] = []
    try:
        server.start(wrap=hosts.wrap("b"))
        url = server.url()  # the server's own database: the test's server holds nothing else
        scheduler = [*hosts.wrap("b"), str(DASK), "scheduler", "--host", "0.0.0.0", "--port", "8786", "--no-dashboard"]
        processes.append(subprocess.Popen(scheduler, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path))
        for host, address in (("t", "10.199.1"), ("q", "10.199.2")):
            worker = [*hosts.wrap(host), str(DASK), "worker", f"tcp://{address}.1:8786", "--host", f"{address}.2",
                      "--nthreads", "1", "--no-dashboard", "--name", f"worker-{host}",
                      "--local-directory", str(tmp_path / f"worker-{host}")]  # fmt: skip
            processes.append(subprocess.Popen(worker, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path))
        command = [*hosts.wrap("b"), sys.executable, "-m", "obsq.csc.cli", "reduce", "bias", str(tmp_path / "archive"),
                   "--repo", str(tmp_path / "site"), "--scheduler", "tcp://10.199.1.1:8786", "--database", url,
                   "--json"]  # fmt: skip
        first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
        assert first.returncode == 0, first.stderr[-3000:]
        rows = [json.loads(line) for line in first.stdout.splitlines() if line.strip()]
        assert sorted(r["status"] for r in rows if "status" in r) == ["built"] * 6
        ours, theirs = masters(tmp_path / "local"), masters(tmp_path / "site")
        assert ours.keys() == theirs.keys()
        for night, data in ours.items():
            np.testing.assert_array_equal(theirs[night], data)
        assert not (tmp_path / "site" / "registry.sqlite3").exists()  # the registry is PostgreSQL's
        again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
        assert again.returncode == 0, again.stderr[-3000:]
        statuses = [json.loads(line).get("status") for line in again.stdout.splitlines() if line.strip()]
        assert sorted(s for s in statuses if s) == ["exists"] * 6
        workers = (tmp_path / "dask.log").read_text()
        assert "10.199.1.2" in workers  # both hosts' workers joined
        assert "10.199.2.2" in workers
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        log.close()
        server.stop()
