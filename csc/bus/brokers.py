"""Brokers obsq can start itself: the embedded amqtt broker and a local Mosquitto process.

- `EmbeddedBroker`: amqtt 0.12 in this process's event loop, bound to loopback (amqtt
  listens on every interface unless told otherwise). The default for one machine.
- `MosquittoProcess`: a `mosquitto` child process from `deploy/mosquitto/local.conf`
  (shipped in the package as `mosquitto-local.conf`), on a port of our choosing. Tests,
  benchmarks and `obsq broker --engine mosquitto` use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any

from obsq.csc.bus.url import BrokerUrl
from obsq.csc.clock import LoopClock, blocking_sleep, wait_for


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    """True if something accepts TCP connections at host:port."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


async def wait_port(host: str, port: int, timeout_s: float) -> None:
    """Wait until something accepts connections at host:port."""
    clock = LoopClock()

    async def poll() -> None:
        while not port_open(host, port):
            await clock.sleep(0.02)

    await wait_for(clock, poll(), timeout_s)


class EmbeddedBroker:
    """amqtt in this event loop, on host:port (loopback unless told otherwise)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 18830) -> None:
        self.host = host
        self.port = port
        self._broker: Any = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    async def start(self) -> None:
        from amqtt.broker import Broker  # imported late: only the broker process needs it

        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}", "max_connections": 1000}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
        self._broker = Broker(config)
        try:
            await self._broker.start()
        except Exception as exc:
            raise OSError(f"cannot start the embedded broker on {self.host}:{self.port}: {exc}") from None

    async def stop(self) -> None:
        if self._broker is not None:
            with contextlib.suppress(Exception):
                await self._broker.shutdown()
            self._broker = None

    async def __aenter__(self) -> EmbeddedBroker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def mosquitto_path() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None
    )


def local_mosquitto_config(port: int) -> str:
    template = resources.files("obsq.csc.bus").joinpath("mosquitto-local.conf").read_text(encoding="utf-8")
    return template.replace("{port}", str(port))


class MosquittoProcess:
    """A mosquitto child process on 127.0.0.1:port, restartable on the same port."""

    def __init__(self, port: int | None = None, workdir: Path | None = None, config: str | None = None) -> None:
        """`config` replaces deploy/mosquitto/local.conf; `{port}` in it is filled in."""
        binary = mosquitto_path()
        if binary is None:
            raise FileNotFoundError("mosquitto is not installed (Debian: apt-get install mosquitto)")
        self.binary = binary
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self._tmp = None if workdir else tempfile.TemporaryDirectory(prefix="obsq-mosquitto-")
        self.workdir = workdir or Path(self._tmp.name)  # type: ignore[union-attr]
        self.config_path = self.workdir / "mosquitto.conf"
        self.log_path = self.workdir / "mosquitto.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._config = config

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> None:
        """Start mosquitto and wait until it accepts connections (blocking, for fixtures)."""
        config = self._config.replace("{port}", str(self.port)) if self._config else local_mosquitto_config(self.port)
        self.config_path.write_text(config)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen([self.binary, "-c", str(self.config_path)], stdout=log, stderr=log)
        clock = LoopClock()
        deadline = clock.monotonic() + timeout_s
        while not port_open(self.host, self.port):
            if self.process.poll() is not None:
                raise OSError(f"mosquitto exited with {self.process.returncode}: {self.log_path.read_text()[-500:]}")
            if clock.monotonic() > deadline:
                self.stop()
                raise OSError(f"mosquitto did not listen on {self.port} within {timeout_s} s")
            blocking_sleep(0.02)

    def stop(self, *, kill: bool = False) -> None:
        if self.process is None:
            return
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> MosquittoProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.asynccontextmanager
async def private_broker() -> AsyncIterator[BrokerUrl]:
    """A broker of our own on a free loopback port: Mosquitto if installed, else the embedded amqtt."""
    port = free_port()
    if mosquitto_path() is not None:
        mosquitto = MosquittoProcess(port=port)
        await asyncio.to_thread(mosquitto.start)
        try:
            yield BrokerUrl.parse(mosquitto.url)
        finally:
            await asyncio.to_thread(mosquitto.close)
    else:
        async with EmbeddedBroker("127.0.0.1", port) as broker:
            yield BrokerUrl.parse(broker.url)
