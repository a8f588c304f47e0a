"""Real brokers and real processes for the system tests.

Mosquitto runs from deploy/mosquitto/local.conf on a free loopback port. Where mosquitto
is not installed the Mosquitto tests skip with a reason — unless $OBSQ_REQUIRE_MOSQUITTO
is set (as .ci/run does), where they fail: CI must never pass by skipping.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from obsq.csc.bus.base import Bus, Message
from obsq.csc.bus.brokers import MosquittoProcess, free_port, mosquitto_path, port_open
from obsq.csc.bus.mqtt import MqttBus
from obsq.csc.bus.url import BrokerUrl
from obsq.csc.clock import LoopClock, blocking_sleep
from obsq.csc.core.topics import ComponentId
from obsq.csc.database import close_connections
from obsq.csc.observatory import component_argv

from .netns import hosts  # noqa: F401 - a fixture, found here by name
from .postgres import PostgresServer

pytestmark = pytest.mark.system

REQUIRE_MOSQUITTO = bool(os.environ.get("OBSQ_REQUIRE_MOSQUITTO"))


def _mosquitto_or_skip() -> None:
    if mosquitto_path() is None:
        if REQUIRE_MOSQUITTO:
            pytest.fail("mosquitto is required ($OBSQ_REQUIRE_MOSQUITTO) but not installed")
        pytest.skip("mosquitto not installed (apt-get install mosquitto); Mosquitto system tests skipped")


def start_mosquitto(port: int | None = None) -> MosquittoProcess:
    _mosquitto_or_skip()
    broker = MosquittoProcess(port=port)
    try:
        broker.start()
    except OSError as exc:
        pytest.fail(f"mosquitto could not start: {exc}")
    return broker


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server of the tests' own for the session (each test takes its own database)."""
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A new, empty database on the tests' server (this process's connections to it closed after)."""
    yield postgres_server.database()
    close_connections()


@pytest.fixture(scope="session")
def mosquitto() -> Iterator[MosquittoProcess]:
    """One Mosquitto for the session (tests isolate themselves by topic root)."""
    broker = start_mosquitto()
    yield broker
    broker.close()


@pytest.fixture
def own_mosquitto() -> Iterator[MosquittoProcess]:
    """A Mosquitto for one test, which the test may stop and restart."""
    broker = start_mosquitto()
    yield broker
    broker.close()


class EmbeddedBrokerProcess:
    """`obsq broker` (amqtt) as a child process."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"embedded-{self.port}.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "obsq.csc.cli", "broker", "--port", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        for _ in range(500):
            if port_open("127.0.0.1", self.port):
                return
            if self.process.poll() is not None:
                break
            blocking_sleep(0.02)
        out = self.log_path.read_text(errors="replace")
        self.close()
        pytest.fail(f"embedded broker did not start: {out[-1000:]}")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="session")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBrokerProcess]:
    broker = EmbeddedBrokerProcess(tmp_path_factory.mktemp("embedded"))
    yield broker
    broker.close()


@pytest.fixture(params=["mosquitto", "embedded"])
def broker_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs once on Mosquitto and once on the embedded broker."""
    broker = request.getfixturevalue(request.param)
    return str(broker.url)


@pytest.fixture
async def bus_factory(broker_url: str) -> AsyncIterator[object]:
    buses: list[MqttBus] = []

    async def make(client_id: str, will: Message | None = None) -> Bus:
        bus = MqttBus(BrokerUrl.parse(broker_url), client_id=f"{client_id}-{os.getpid()}", clock=LoopClock())
        bus.set_will(will)
        await bus.start()
        buses.append(bus)
        return bus

    yield make
    for bus in buses:
        await bus.close()


class ComponentProcess:
    """`obsq csc run NAME` as a child process (the command line the observatory's bring-up uses)."""

    def __init__(
        self,
        component: str,
        url: str,
        root: str,
        *extra: str,
        log: Path | None = None,
        ca_file: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.log_path = log
        command = [*component_argv(ComponentId.parse(component), broker=url, root=root, ca_file=ca_file), *extra]
        with log.open("wb") if log else open(os.devnull, "wb") as out:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=out, stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})}
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


def stop_processes(*processes: subprocess.Popen[Any] | None) -> None:
    """Terminate what still runs (SIGTERM, then SIGKILL after 30 s), in the order given."""
    for process in processes:
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def run_cli(*args: str, timeout: float = 60, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "obsq.csc.cli", *args], capture_output=True, text=True, timeout=timeout, check=False,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def build_clientid_plugin(folder: Path) -> Path:
    """deploy/mosquitto/build-plugin into `folder`: the site broker's plugin that binds client ids to users."""
    out = folder / "obsq_clientid.so"
    script = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto" / "build-plugin"
    built = subprocess.run([str(script), str(out)], capture_output=True, text=True, check=False)
    if built.returncode != 0:
        if REQUIRE_MOSQUITTO:
            pytest.fail(f"the site broker's client-id plugin does not build: {built.stderr.strip()}")
        pytest.skip(f"the site broker's client-id plugin does not build here: {built.stderr.strip()}")
    return out
