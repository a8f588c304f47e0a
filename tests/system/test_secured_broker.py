"""Credentials and TLS: a component and `obsq cmd` through an authenticated, TLS Mosquitto."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from obsq.csc.bus.brokers import MosquittoProcess, free_port, mosquitto_path, port_open
from obsq.csc.bus.mqtt import MqttBus
from obsq.csc.bus.url import BrokerUrl
from obsq.csc.clock import LoopClock, blocking_sleep
from obsq.csc.component import Remote
from obsq.csc.core.errors import BusDisconnectedError

from .conftest import ComponentProcess, run_cli
from .test_components import wait_alive

pytestmark = pytest.mark.system

CONFIG = """
per_listener_settings false
allow_anonymous false
password_file {dir}/passwd
set_tcp_nodelay true
persistence false
listener {port} 127.0.0.1
listener {tls_port} 127.0.0.1
cafile {dir}/ca.crt
certfile {dir}/server.crt
keyfile {dir}/server.key
log_dest stderr
"""


def _run(*args: str, cwd: Path) -> None:
    subprocess.run(args, cwd=cwd, check=True, capture_output=True)


class SecuredMosquitto:
    def __init__(self) -> None:
        if mosquitto_path() is None or not shutil.which("openssl") or not shutil.which("mosquitto_passwd"):
            pytest.skip("needs mosquitto, mosquitto_passwd and openssl")
        self.dir = Path(tempfile.mkdtemp(prefix="obsq-secured-"))
        self.dir.chmod(0o755)  # mosquitto started as root reads these as the mosquitto user
        d = self.dir
        _run("mosquitto_passwd", "-c", "-b", "passwd", "camera", "camera-secret", cwd=d)
        _run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-keyout", "ca.key",
             "-out", "ca.crt", "-subj", "/CN=obsq test CA", cwd=d)  # fmt: skip
        _run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
             "-subj", "/CN=localhost", cwd=d)  # fmt: skip
        (d / "server.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
        _run("openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "server.crt", "-days", "2", "-extfile", "server.ext", cwd=d)  # fmt: skip
        for path in d.iterdir():
            path.chmod(0o644)
        self.tls_port = free_port()
        config = CONFIG.replace("{dir}", str(d)).replace("{tls_port}", str(self.tls_port))
        self.broker = MosquittoProcess(config=config)
        self.broker.start()
        self.plain = f"mqtt://camera:camera-secret@127.0.0.1:{self.broker.port}"
        self.tls = f"mqtts://camera:camera-secret@127.0.0.1:{self.tls_port}"
        self.ca_file = str(d / "ca.crt")
        for _ in range(250):
            if port_open("127.0.0.1", self.tls_port):
                break
            blocking_sleep(0.02)

    def close(self) -> None:
        self.broker.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def secured() -> Iterator[SecuredMosquitto]:
    broker = SecuredMosquitto()
    yield broker
    broker.close()


async def test_wrong_password_is_refused_with_a_clear_error(secured: SecuredMosquitto) -> None:
    bad = secured.plain.replace("camera-secret", "wrong")
    bus = MqttBus(BrokerUrl.parse(bad), connect_timeout_s=1.0, clock=LoopClock())
    with pytest.raises(BusDisconnectedError, match=r"cannot reach the MQTT broker .* Not authorized"):
        await bus.start()


async def test_component_and_cli_over_tls_with_credentials(
    secured: SecuredMosquitto, root: str, tmp_path: Path
) -> None:
    process = ComponentProcess("Test:1", secured.tls, root, log=tmp_path / "csc.log", ca_file=secured.ca_file)
    try:
        bus = MqttBus(BrokerUrl.parse(secured.tls, ca_file=secured.ca_file), clock=LoopClock())
        await bus.start()
        try:
            async with Remote(bus, "Test:1", clock=LoopClock(), root=root) as remote:
                await wait_alive(remote)
        finally:
            await bus.close()
        result = await asyncio.to_thread(
            run_cli, "cmd", "Test:1", "start", "--broker", secured.tls, "--ca-file", secured.ca_file, "--root", root
        )
        assert result.returncode == 0, result.stderr
        assert "COMPLETE" in result.stdout
        plain = await asyncio.to_thread(run_cli, "cmd", "Test:1", "enable", "--broker", secured.plain, "--root", root)
        assert plain.returncode == 0, plain.stderr
    finally:
        process.close()
