"""Credentials and TLS: a component and `obsq cmd` through an authenticated, TLS Mosquitto."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from obsq.csc.bus.brokers import MosquittoProcess, free_port, mosquitto_path, port_open
from obsq.csc.bus.credentials import Credentials
from obsq.csc.bus.mqtt import MqttBus
from obsq.csc.bus.url import BrokerUrl
from obsq.csc.clock import LoopClock, blocking_sleep
from obsq.csc.component import AckError, Remote
from obsq.csc.core.errors import BusDisconnectedError

from .conftest import ComponentProcess, run_cli, stop_processes
from .test_components import until, wait_alive

pytestmark = [pytest.mark.system, pytest.mark.timeout(300)]
SECRET = "camera-secret"

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
        self.tls_no_password = f"mqtts://127.0.0.1:{self.tls_port}"
        self.credentials = d / "camera.env"
        self.credentials.write_text(f"OBSQ_USERNAME=camera\nOBSQ_PASSWORD={SECRET}\nOBSQ_CA_FILE={self.ca_file}\n")
        self.credentials.chmod(0o600)
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
    with pytest.raises(BusDisconnectedError, match=r"broker at .* refused the connection: .*Not authorized"):
        await bus.start()


async def test_component_and_cli_over_tls_with_credentials(
    secured: SecuredMosquitto, root: str, tmp_path: Path
) -> None:
    # the component's password comes from its environment, never its command line
    env = {"OBSQ_CREDENTIALS": str(secured.credentials)}
    process = ComponentProcess("Test:1", secured.tls_no_password, root, log=tmp_path / "csc.log", env=env)
    try:
        assert SECRET not in Path(f"/proc/{process.pid}/cmdline").read_bytes().decode(errors="replace")
        bus = MqttBus(BrokerUrl.parse(secured.tls, ca_file=secured.ca_file), clock=LoopClock())
        await bus.start()
        try:
            async with Remote(bus, "Test:1", clock=LoopClock(), root=root) as remote:
                await wait_alive(remote)
        finally:
            await bus.close()
        common = ("--broker", secured.tls_no_password, "--root", root)
        result = await asyncio.to_thread(
            run_cli, "cmd", "Test:1", "start", *common, "--credentials", str(secured.credentials)
        )
        assert result.returncode == 0, result.stderr
        assert "COMPLETE" in result.stdout
        by_env = await asyncio.to_thread(
            run_cli, "cmd", "Test:1", "enable", *common, "--ca-file", secured.ca_file,
            env={"OBSQ_USERNAME": "camera", "OBSQ_PASSWORD": SECRET},
        )  # fmt: skip
        assert by_env.returncode == 0, by_env.stderr
        # a password on the command line is refused before anything is sent
        refused = await asyncio.to_thread(
            run_cli, "cmd", "Test:1", "disable", "--broker", secured.plain, "--root", root
        )
        assert refused.returncode == 2
        assert "a password on the command line is visible to every user of this host" in refused.stderr
        assert SECRET not in refused.stderr + refused.stdout
    finally:
        process.close()


async def test_obsq_up_hands_each_child_its_credentials_without_argv(
    secured: SecuredMosquitto, root: str, tmp_path: Path
) -> None:
    """The children of `obsq up` and the queue's scripts reach a TLS broker with a password, none in argv."""
    data = tmp_path / "up"
    env = {"OBSQ_CREDENTIALS": str(secured.credentials), "OBSQ_SCRIPT_CREDENTIALS": str(secured.credentials)}
    log = (tmp_path / "up.log").open("w")
    up = subprocess.Popen(
        [sys.executable, "-m", "obsq.csc.cli", "up", "--broker", secured.tls_no_password, "--root", root,
         "--data", str(data), "--only", "ATDome,ScriptQueue", "--state", "enabled"],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env},
    )  # fmt: skip
    try:
        await until(lambda: "obsq up: ready" in (tmp_path / "up.log").read_text(), 120)
        children = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _parent(p) == up.pid]
        assert len(children) == 2
        for child in children:
            assert SECRET not in (child / "cmdline").read_bytes().decode(errors="replace")
        common = ("--broker", secured.tls_no_password, "--root", root, "--credentials", str(secured.credentials))
        added = await asyncio.to_thread(
            run_cli, "queue", "add", "sleep.py", "--config", str(_write(tmp_path / "s.yaml", "sleep_for: 0.1\n")),
            *common,
        )  # fmt: skip
        assert added.returncode == 0, added.stdout + added.stderr
        shown = ""
        while " DONE" not in shown:  # the test's own timeout bounds a script that never finishes
            shown = (await asyncio.to_thread(run_cli, "queue", "show", *common)).stdout
            await LoopClock().sleep(0.1)
        assert "sleep.py" in shown
    finally:
        stop_processes(up)
        log.close()


def _parent(proc: Path) -> int:
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


MAKE_SECRETS = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto" / "make-secrets"


async def test_make_secrets_gives_every_principal_its_file_and_rotates_one() -> None:
    if mosquitto_path() is None or not shutil.which("openssl") or not shutil.which("mosquitto_passwd"):
        pytest.skip("needs mosquitto, mosquitto_passwd and openssl")
    secrets = Path(tempfile.mkdtemp(prefix="obsq-secrets-")) / "secrets"  # mosquitto must reach it (not tmp_path)
    env = {**os.environ, "OBSQ": f"{sys.executable} -m obsq.csc.cli"}
    made = subprocess.run([str(MAKE_SECRETS), str(secrets), "--host", "localhost", "--host", "127.0.0.1"],
                          capture_output=True, text=True, env=env, check=False)  # fmt: skip
    assert made.returncode == 0, made.stderr
    principals = subprocess.run([sys.executable, "-m", "obsq.csc.cli", "csc", "principals"],
                                capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    assert {"ATDome", "OCPS-1", "ScriptQueue-2", "Script", "Scheduler-2", "operator", "observer"} <= set(principals)
    users = [line.split(":")[0] for line in (secrets / "passwd").read_text().splitlines()]
    assert users == principals
    for user in principals:
        file = secrets / "credentials" / f"{user}.env"
        assert file.stat().st_mode & 0o777 == 0o600
        assert Credentials.from_file(file).username == user
    password_lines = (secrets / "passwd").read_text().splitlines()
    assert all(p not in made.stdout + made.stderr for p in password_lines)

    for folder in (secrets.parent, secrets):
        folder.chmod(0o755)  # mosquitto, started as root, reads these as the mosquitto user
    for name in ("passwd", "server.key"):
        (secrets / name).chmod(0o644)
    port = free_port()
    broker = MosquittoProcess(config=CONFIG.replace("{dir}", str(secrets)).replace("{tls_port}", str(port)))
    broker.start()
    try:
        for _ in range(250):
            if port_open("127.0.0.1", port):
                break
            blocking_sleep(0.02)
        url = BrokerUrl.parse(f"mqtts://localhost:{port}")
        before = Credentials.from_file(secrets / "credentials" / "ATDome.env")
        await _connects(before.apply(url))
        rotated = subprocess.run([str(MAKE_SECRETS), str(secrets), "--rotate", "ATDome"],
                                 capture_output=True, text=True, env=env, check=False)  # fmt: skip
        assert rotated.returncode == 0, rotated.stderr
        after_lines = (secrets / "passwd").read_text().splitlines()
        changed = [a.split(":")[0] for a, b in zip(password_lines, after_lines, strict=True) if a != b]
        assert changed == ["ATDome"]  # rotating one principal touches only its line
        (secrets / "passwd").chmod(0o644)
        assert broker.process is not None
        broker.process.send_signal(signal.SIGHUP)  # mosquitto reloads its password file
        after = Credentials.from_file(secrets / "credentials" / "ATDome.env")
        assert after.password != before.password
        await _connects(after.apply(url))
        with pytest.raises(BusDisconnectedError, match="Not authorized"):
            await _connects(before.apply(url), timeout_s=2.0)
    finally:
        broker.close()
        shutil.rmtree(secrets.parent, ignore_errors=True)


async def _connects(url: BrokerUrl, timeout_s: float = 10.0) -> None:
    bus = MqttBus(url, connect_timeout_s=timeout_s, clock=LoopClock())
    await bus.start()
    await bus.close()


ACL = """
user Test-1
topic read {root}/Test/1/cmd/#
topic write {root}/Test/1/evt/#
topic write {root}/Test/1/tel/#
topic write {root}/Test/1/ackcmd

user operator
topic read {root}/#
topic write {root}/+/+/cmd/+/operator
"""


async def test_the_broker_authenticates_who_commands(root: str, tmp_path: Path) -> None:
    """With the user in the command topic and `…/cmd/+/<user>` the only commands a user may write."""
    if mosquitto_path() is None or not shutil.which("mosquitto_passwd"):
        pytest.skip("needs mosquitto and mosquitto_passwd")
    folder = Path(tempfile.mkdtemp(prefix="obsq-acl-"))
    folder.chmod(0o755)
    try:
        for user in ("Test-1", "operator"):
            _run(
                "mosquitto_passwd",
                *(["-c"] if user == "Test-1" else []),
                "-b",
                "passwd",
                user,
                f"{user}-pw",
                cwd=folder,
            )
        (folder / "acl").write_text(ACL.replace("{root}", root))
        for path in folder.iterdir():
            path.chmod(0o644)
        config = (
            f"per_listener_settings false\nallow_anonymous false\npassword_file {folder}/passwd\n"
            f"acl_file {folder}/acl\nset_tcp_nodelay true\npersistence false\nlistener {{port}} 127.0.0.1\n"
            "log_dest stderr\n"
        )
        broker = MosquittoProcess(config=config)
        broker.start()
        url = f"mqtt://127.0.0.1:{broker.port}"
        component_env = {"OBSQ_USERNAME": "Test-1", "OBSQ_PASSWORD": "Test-1-pw"}
        process = ComponentProcess("Test:1", url, root, log=tmp_path / "csc.log", env=component_env)
        try:
            operator = BrokerUrl.parse(f"mqtt://operator:operator-pw@127.0.0.1:{broker.port}")
            bus = MqttBus(operator, clock=LoopClock())
            await bus.start()
            try:
                honest = Remote(bus, "Test:1", clock=LoopClock(), root=root, identity="alice@control-room")
                async with honest:
                    await wait_alive(honest)
                    assert (await honest.command("start", timeout_s=10)).result == "Done"
                impostor = Remote(bus, "Test:1", clock=LoopClock(), root=root, identity="ScriptQueue:2")
                async with impostor:
                    with pytest.raises(AckError, match="is not an identity of the authenticated user 'operator'"):
                        await impostor.command("enable", timeout_s=10)
                # another user's segment, or none: the broker's ACL drops it, and the component never sees it
                acks: list[bytes] = []
                await bus.subscribe(f"{root}/Test/1/ackcmd", lambda m: acks.append(m.payload))
                forged = b'{"private_seqNum": 7, "private_identity": "ScriptQueue:2"}'
                await bus.publish(f"{root}/Test/1/cmd/enable/ScriptQueue-2", forged, qos=1)
                await bus.publish(f"{root}/Test/1/cmd/enable", forged, qos=1)
                after = Remote(bus, "Test:1", clock=LoopClock(), root=root, identity="alice@control-room")
                async with after:  # sent after them: had either enabled it, this enable would fail
                    assert (await after.command("enable", timeout_s=10)).result == "Done"
                # no ack to the forged command (seqNum 7); a byte match would also catch 712910726
                assert not [a for a in map(json.loads, acks) if a["private_seqNum"] == 7]
            finally:
                await bus.close()
            # the command line, authenticated as the operator, commands through the ACL
            result = await asyncio.to_thread(
                run_cli, "cmd", "Test:1", "disable", "--broker", url, "--root", root,
                env={"OBSQ_USERNAME": "operator", "OBSQ_PASSWORD": "operator-pw"},
            )  # fmt: skip
            assert result.returncode == 0, result.stdout + result.stderr
        finally:
            process.close()
            broker.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def test_the_console_logs_users_in_through_the_broker_and_commands_as_them(
    secured: SecuredMosquitto, root: str, tmp_path: Path
) -> None:
    import httpx

    from obsq.csc.app.connection import Connection
    from obsq.csc.web.console import Console
    from obsq.csc.web.library import DataFolder
    from obsq.csc.web.server import build_app

    for user, password in (("operator", "operator-secret"), ("observer", "observer-secret")):
        _run("mosquitto_passwd", "-b", "passwd", user, password, cwd=secured.dir)
    (secured.dir / "passwd").chmod(0o644)
    assert secured.broker.process is not None
    secured.broker.process.send_signal(signal.SIGHUP)  # mosquitto reads its password file again
    env = {"OBSQ_CREDENTIALS": str(secured.credentials)}
    process = ComponentProcess("Test:1", secured.tls_no_password, root, log=tmp_path / "csc.log", env=env)
    # the console reads the bus with its own credentials, as every client does
    connection = Connection(broker=secured.tls_no_password, credentials=secured.credentials, ca_file=secured.ca_file,
                            root=root)  # fmt: skip
    console = Console(connection, connection.url(), root)
    reading = MqttBus(connection.url(), clock=LoopClock())
    await reading.start()
    await console.watch(reading)
    app = build_app(console, DataFolder(tmp_path / "data"))
    identities: list[str] = []
    reading_commands = await reading.subscribe(f"{root}/Test/1/cmd/#", lambda m: identities.append(
        json.loads(m.payload)["private_identity"]))  # fmt: skip
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console") as client:
            await until(lambda: any(c["id"] == "Test:1" and c["health"] == "alive"
                                    for c in console.state.snapshot(LoopClock().tai())["components"]), 30)  # fmt: skip
            refused = await client.post("/api/login", json={"user": "operator", "password": "wrong"})
            assert refused.status_code == 401
            assert "refused user 'operator'" in refused.json()["error"]
            assert "wrong" not in refused.json()["error"]
            login = await client.post("/api/login", json={"user": "operator", "password": "operator-secret"})
            assert login.status_code == 200, login.text
            answer = await client.post("/api/command", json={"component": "Test:1", "command": "start"})
            assert answer.json()["acks"][-1]["ack"] == "COMPLETE", answer.text
            assert identities[-1].startswith("operator@")
            await client.post("/api/logout", json={})
            login = await client.post("/api/login", json={"user": "observer", "password": "observer-secret"})
            assert login.json()["role"] == "observer"
            answer = await client.post("/api/command", json={"component": "Test:1", "command": "enable"})
            assert answer.status_code == 403
            assert len(identities) == 1  # the observer's command never reached the bus
    finally:
        await reading.unsubscribe(reading_commands)
        await console.close()
        await reading.close()
        process.close()
