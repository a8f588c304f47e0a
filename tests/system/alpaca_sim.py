"""alpaca-simulators (the third-party Python Alpaca simulators, MIT) as a process of the test's own.

It runs on a free loopback port from a configuration the test writes (only the devices asked
for), so that obsq's Alpaca drivers are tried against a server obsq did not make.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from obsq.csc.bus.brokers import free_port


class AlpacaSimulators:
    """`python -m alpaca_simulators.run_simulator` on 127.0.0.1 with `devices` as its configuration."""

    def __init__(self, folder: Path, devices: dict[str, dict[int, dict[str, Any]]]) -> None:
        self.folder = folder
        self.devices = devices
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, device_type: str, number: int = 0) -> str:
        return f"alpaca://127.0.0.1:{self.port}/{device_type}/{number}"

    def start(self) -> None:
        pytest.importorskip("alpaca_simulators", reason="pip install alpaca-simulators (a test extra)")
        config = self.folder / "alpaca-simulators.yaml"
        config.write_text(yaml.safe_dump({"devices": self.devices}))
        log = (self.folder / "alpaca-simulators.log").open("wb")
        argv = [sys.executable, "-m", "alpaca_simulators.run_simulator", "--host", "127.0.0.1",
                "--port", str(self.port), "--config", str(config)]  # fmt: skip
        self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.folder)
        log.close()
        first = next(iter(self.devices))
        probe = f"http://127.0.0.1:{self.port}/api/v1/{first}/0/connected"
        deadline = time.monotonic() + 120  # bounds a hang only: it starts in about 2 s
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"alpaca-simulators ended: {(self.folder / 'alpaca-simulators.log').read_text()}")
            try:
                with urllib.request.urlopen(probe, timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            assert time.monotonic() < deadline, "alpaca-simulators did not answer within 120 s"
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def pause(self) -> None:
        """SIGSTOP: the server holds its connections and answers nothing (a device that hangs)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)
