"""The weekly on the site broker: Mosquitto started with deploy/mosquitto/site.conf and the ACL, TLS on.

Only what a test must substitute is substituted (the folder of the secrets, a loopback listener on
a free port, stderr instead of syslog, the ACL for this test's own topic root). The secrets are
deploy/mosquitto/make-secrets' own; every member of `obsq up` runs as its own principal, the
queue's scripts as `Script`, and `obsq weekly` as `operator`.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from obsq.csc.access import mosquitto_acl
from obsq.csc.bus.brokers import MosquittoProcess, mosquitto_path
from obsq.csc.bus.credentials import Credentials
from obsq.csc.bus.mqtt import MqttBus
from obsq.csc.bus.url import BrokerUrl
from obsq.csc.clock import LoopClock
from obsq.csc.core.errors import BusDisconnectedError

from .conftest import build_clientid_plugin, stop_processes
from .test_components import until
from .test_weekly import planned_images

pytestmark = [pytest.mark.system, pytest.mark.timeout(900)]

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto"
CLI = [sys.executable, "-m", "obsq.csc.cli"]


def site_config(secrets: Path) -> str:
    text = (DEPLOY / "site.conf").read_text()
    for shipped, here in [
        ("/usr/lib/obsq/obsq_clientid.so", str(build_clientid_plugin(secrets))),
        ("/etc/mosquitto/obsq/acl", str(secrets / "acl")),
        ("/etc/mosquitto/obsq/", f"{secrets}/"),
        ("/var/lib/mosquitto/", f"{secrets}/persistence/"),
        ("listener 8883 127.0.0.1\n", "listener {port} 127.0.0.1\n"),
        ("log_dest syslog", "log_dest stderr"),
    ]:
        assert shipped in text, shipped
        text = text.replace(shipped, here)
    return text


@dataclass
class SiteBroker:
    """Mosquitto on site.conf with make-secrets' secrets and the ACL for one test's root."""

    broker: MosquittoProcess
    secrets: Path

    @property
    def url(self) -> str:
        return f"mqtts://localhost:{self.broker.port}"

    def credentials(self, principal: str) -> Path:
        return self.secrets / "credentials" / f"{principal}.env"

    async def bus(self, principal: str | None, url: str | None = None, timeout_s: float = 10.0) -> MqttBus:
        target = BrokerUrl.parse(url or self.url, ca_file=str(self.secrets / "ca.crt"))
        if principal is not None:
            target = Credentials.from_file(self.credentials(principal)).apply(target)
        bus = MqttBus(target, connect_timeout_s=timeout_s, clock=LoopClock())
        await bus.start()
        return bus


@pytest.fixture
def site(root: str) -> Iterator[SiteBroker]:
    if mosquitto_path() is None or not shutil.which("openssl") or not shutil.which("mosquitto_passwd"):
        pytest.skip("needs mosquitto, mosquitto_passwd and openssl")
    folder = Path(tempfile.mkdtemp(prefix="obsq-site-"))  # mosquitto (its own user) must reach it
    secrets = folder / "secrets"
    env = {**os.environ, "OBSQ": " ".join(CLI)}
    subprocess.run([str(DEPLOY / "make-secrets"), str(secrets), "--host", "localhost"], env=env, check=True,
                   capture_output=True)  # fmt: skip
    (secrets / "acl").write_text(mosquitto_acl(root))
    (secrets / "persistence").mkdir()
    for path in (folder, secrets, secrets / "persistence"):
        path.chmod(0o777 if path.name == "persistence" else 0o755)
    for name in ("passwd", "acl", "server.key"):
        (secrets / name).chmod(0o644)
    broker = MosquittoProcess(config=site_config(secrets))
    broker.start()
    try:
        yield SiteBroker(broker, secrets)
    finally:
        broker.close()
        shutil.rmtree(folder, ignore_errors=True)


async def test_each_principal_gets_only_its_job_through(site: SiteBroker, root: str) -> None:
    observer = await site.bus("operator")  # reads everything: sees whatever gets through
    seen: list[str] = []
    await observer.subscribe(f"{root}/#", lambda m: seen.append(m.topic))
    dome = await site.bus("ATDome")
    try:
        own = f"{root}/ATDome/0/evt/summaryState"
        for topic in (
            f"{root}/ATCamera/0/evt/summaryState",  # another component's events
            f"{root}/ATDome/5/evt/summaryState",  # another index of its name
            f"{root}/ATCamera/0/cmd/takeImages/ATDome",  # a component commanding another
            f"{root}/ATCamera/0/cmd/takeImages/operator",  # as another user
            own,  # the legitimate path, last: once it is seen, whatever came before it has been too
        ):
            await dome.publish(topic, b'{"private_seqNum": 1, "private_identity": "ATDome"}', qos=1)
        await until(lambda: own in seen)
        assert [t for t in seen if "/ATDome/" in t or "/ATCamera/" in t] == [own]
    finally:
        await dome.close()
        await observer.close()
    with pytest.raises(BusDisconnectedError, match="Not authorized"):
        await site.bus(None, timeout_s=2.0)  # no password
    plain = f"mqtt://localhost:{site.broker.port}"
    with pytest.raises(BusDisconnectedError):
        await site.bus("operator", url=plain, timeout_s=2.0)  # plain TCP to the TLS listener


async def test_no_principal_can_take_another_principals_client_id(site: SiteBroker) -> None:
    """Every principal tries the live client id of every other: refused at CONNECT, the victim never knocked off."""
    principals = sorted(p.stem for p in (site.secrets / "credentials").glob("*.env"))
    assert {"ATDome", "ScriptQueue-2", "OCPS-1", "Script", "operator", "observer"} <= set(principals)
    ca = str(site.secrets / "ca.crt")
    victims: dict[str, MqttBus] = {}
    drops: list[str] = []
    try:
        for principal in principals:  # each connected as itself, with an id as obsq makes it
            url = Credentials.from_file(site.credentials(principal)).apply(BrokerUrl.parse(site.url, ca_file=ca))
            bus = MqttBus(url, connect_timeout_s=10.0, clock=LoopClock())
            await bus.start()
            bus.add_connection_listener(lambda up, who=principal: None if up else drops.append(who))
            victims[principal] = bus
        attempts = 0
        for thief in principals:
            url = Credentials.from_file(site.credentials(thief)).apply(BrokerUrl.parse(site.url, ca_file=ca))
            for victim, bus in victims.items():
                if victim == thief:
                    continue
                attempts += 1
                taker = MqttBus(url, client_id=bus.client_id, connect_timeout_s=10.0, clock=LoopClock())
                with pytest.raises(BusDisconnectedError, match=r"refused the connection: .*Not authorized"):
                    await taker.start()
        await asyncio.sleep(1.0)  # a kick would have shown by now: the broker closes the victim at once
        assert drops == [], drops
        assert all(bus.connected for bus in victims.values())
        print(f"{attempts} attempts to take another principal's client id: all refused, no victim dropped")
        # its own id again (a component's restart): allowed, the old connection replaced
        own = victims["ATDome"]
        url = Credentials.from_file(site.credentials("ATDome")).apply(BrokerUrl.parse(site.url, ca_file=ca))
        again = MqttBus(url, client_id=own.client_id, connect_timeout_s=10.0, clock=LoopClock())
        await again.start()
        await again.close()
    finally:
        for bus in victims.values():
            await bus.close()


async def test_the_weekly_runs_on_the_site_broker_with_each_principal(
    site: SiteBroker, root: str, tmp_path: Path
) -> None:
    credentials = site.secrets / "credentials"
    url = site.url
    cli = CLI
    data = tmp_path / "up"
    logs = [(tmp_path / "up.log").open("w"), (tmp_path / "weekly.log").open("w")]
    as_operator = {**os.environ, "OBSQ_CREDENTIALS": str(credentials / "operator.env")}
    up = subprocess.Popen(
        [*cli, "up", "--broker", url, "--root", root, "--data", str(data), "--speed", "600",
         "--credentials-dir", str(credentials),
         "--state", "enabled", "--state", "ATWhiteLight=standby", "--state", "OCPS=standby"],
        stdout=logs[0], stderr=subprocess.STDOUT, env=as_operator,
    )  # fmt: skip
    weekly = None
    try:
        await until(lambda: "obsq up: ready" in (tmp_path / "up.log").read_text() or up.poll() is not None, 300)
        assert up.poll() is None, (tmp_path / "up.log").read_text()[-3000:]
        weekly = subprocess.Popen(
            [*cli, "weekly", "--broker", url, "--root", root, "--data", str(tmp_path / "weekly"), "--speed", "600"],
            stdout=logs[1], stderr=subprocess.STDOUT, env=as_operator,
        )  # fmt: skip
        await until(lambda: weekly.poll() is not None, 800)
        output = (tmp_path / "weekly.log").read_text()
        assert weekly.returncode == 0, output[-4000:]
        assert "all scripts DONE" in output
        db = sqlite3.connect(data / "registry.sqlite3")
        taken = Counter(db.execute("SELECT imgtype, filter, grating, exptime FROM acquired_images").fetchall())
        db.close()
        assert taken == planned_images()
        db = sqlite3.connect(data / "repo" / "registry.sqlite3")
        certified = db.execute("SELECT COUNT(*) FROM certifications").fetchone()[0]
        db.close()
        assert certified > 0
    finally:
        stop_processes(weekly, up)
        for log in logs:
            log.close()
