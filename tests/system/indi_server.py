"""indiserver and INDI's own simulators (Debian's indi-bin) as processes of the test's own (issue 24).

Each server runs on a free port with its drivers' configuration folder ($HOME/.indi) in the
test's folder. Where indi-bin is not installed the tests skip — unless $OBSQ_REQUIRE_INDI is
set (as .ci/run does), where they fail: CI must never pass by skipping.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from obsq.csc.bus.brokers import free_port

REQUIRE_INDI = bool(os.environ.get("OBSQ_REQUIRE_INDI"))


def indi_or_skip() -> None:
    if shutil.which("indiserver") is None:
        if REQUIRE_INDI:
            pytest.fail("indiserver is required ($OBSQ_REQUIRE_INDI) but not installed (apt-get install indi-bin)")
        pytest.skip("indi-bin not installed (apt-get install indi-bin); the INDI tests are skipped")


class IndiServer:
    """`indiserver -p PORT DRIVER…`, its drivers' settings in `folder`."""

    def __init__(self, folder: Path, *drivers: str, port: int | None = None) -> None:
        self.folder = folder
        self.drivers = drivers
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, device: str) -> str:
        return f"indi://127.0.0.1:{self.port}/{device}"

    def start(self) -> None:
        indi_or_skip()
        self.folder.mkdir(parents=True, exist_ok=True)
        with (self.folder / f"indiserver-{self.port}.log").open("ab") as log:
            self.process = subprocess.Popen(
                # -u: its own local socket (an abstract name), else two servers clash on /tmp/indiserver
                ["indiserver", "-p", str(self.port), "-u", f"/tmp/obsq-indiserver-{self.port}", *self.drivers],
                stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env={**os.environ, "HOME": str(self.folder)}, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 60  # bounds a hang only
        while True:
            assert self.process.poll() is None, f"indiserver ended with {self.process.returncode}"
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                assert time.monotonic() < deadline, "indiserver did not listen within 60 s"
                time.sleep(0.1)

    def get(self, name: str) -> str:
        """A property element's value as indi_getprop (INDI's own client) reads it: `Device.PROPERTY.ELEMENT`."""
        done = subprocess.run(["indi_getprop", "-p", str(self.port), "-1", name],
                              capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
        return done.stdout.strip()

    def stop(self) -> None:
        """SIGKILL of the server and its drivers (a machine that goes away)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
