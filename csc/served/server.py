"""Running the served devices: `obsq alpaca serve` in a process, and the launcher that starts one for a run.

`serve` runs the Alpaca server in this process until it is stopped (SIGINT/SIGTERM). `ServedAlpaca`
starts `obsq alpaca serve` as a child process on a free loopback port at the run's clock speed and
epoch, waits until it answers (no fixed limit: it fails only if the process ends first), gives the
devices file for it, and stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from obsq.csc.bus.brokers import free_port, port_open
from obsq.csc.clock import Clock, LoopClock
from obsq.csc.core.errors import UsageError
from obsq.csc.served.addresses import device_urls, devices_yaml

#: Real seconds between two readiness probes of a starting server.
PROBE_S = 0.1


@dataclass(frozen=True)
class ServeOptions:
    """`obsq alpaca serve`: where to listen, the clock, the faults, where to write the devices file."""

    host: str
    port: int
    speed: float
    epoch: float | None
    inject: Sequence[str]
    devices_file: Path | None = None


async def serve(options: ServeOptions) -> int:
    """Serve the simulated observatory's devices until stopped."""
    import uvicorn

    from obsq.csc.served.app import make_app
    from obsq.csc.served.devices import ServedSite

    if port_open(options.host, options.port):
        raise UsageError(f"--port {options.port}: something listens on {options.host}:{options.port} already")
    site = ServedSite(LoopClock(options.speed, epoch_tai=options.epoch))
    for text in options.inject:
        name, _, value = text.partition("=")
        try:
            site.inject(name, value)
        except ValueError as exc:
            raise UsageError(f"--inject {text}: {exc}") from None
    # idle connections kept 30 s (uvicorn's 5 s is a client's own expiry in many libraries: the keep-alive race)
    config = uvicorn.Config(make_app(site), host=options.host, port=options.port, log_level="warning",
                            lifespan="off", timeout_graceful_shutdown=1, timeout_keep_alive=30)  # fmt: skip
    server = uvicorn.Server(config)
    if options.devices_file is not None:
        options.devices_file.write_text(devices_yaml(options.host, options.port), encoding="utf-8")
    names = ", ".join(f"{kind}/{number}" for kind, number in site.devices)
    print(f"obsq alpaca: {names} at http://{options.host}:{options.port} (speed {options.speed:g})", flush=True)
    await server.serve()
    if not server.started:
        raise UsageError(f"--port {options.port}: could not listen on {options.host}:{options.port}")
    return 0


@dataclass
class ServedAlpaca:
    """`obsq alpaca serve` as a child process of a run (obsq weekly --alpaca, obsq up --alpaca)."""

    log: Path
    speed: float = 1.0
    epoch: float | None = None
    inject: Sequence[str] = ()
    host: str = "127.0.0.1"
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def devices(self) -> dict[str, dict[str, str]]:
        return device_urls(self.host, self.port)

    def argv(self) -> list[str]:
        argv = [sys.executable, "-m", "obsq.csc.cli", "alpaca", "serve", "--host", self.host,
                "--port", str(self.port), "--speed", f"{self.speed:g}"]  # fmt: skip
        if self.epoch is not None:
            argv += ["--epoch", repr(self.epoch)]
        return argv + [f"--inject={i}" for i in self.inject]

    async def start(self, wall: Clock) -> None:
        self.process = self._spawn()
        probe = f"http://{self.host}:{self.port}/management/apiversions"
        while True:
            if self.process.poll() is not None:
                tail = self.log.read_text(errors="replace")[-2000:]
                raise UsageError(f"obsq alpaca serve ended with code {self.process.returncode} while starting:\n{tail}")
            with contextlib.suppress(OSError):
                await asyncio.to_thread(_answers, probe)
                return
            await wall.sleep(PROBE_S)

    def _spawn(self) -> subprocess.Popen[bytes]:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            return subprocess.Popen(self.argv(), stdout=out, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _answers(url: str) -> None:
    with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310 - loopback, our own server
        answer.read()
