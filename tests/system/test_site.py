"""The weekly on the site broker: Mosquitto started with deploy/mosquitto/site.conf and the ACL, TLS on.

Only what a test must substitute is substituted (the folder of the secrets, a loopback listener on
a free port, stderr instead of syslog, the ACL for this test's own topic root). The secrets are
deploy/mosquitto/make-secrets' own; every member of `obsq up` runs as its own principal, the
queue's scripts as `Script`, and `obsq weekly` as `operator`.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import pytest

from obsq.csc.access import mosquitto_acl
from obsq.csc.bus.brokers import MosquittoProcess, mosquitto_path

from .test_components import until
from .test_weekly import planned_images

pytestmark = [pytest.mark.system, pytest.mark.timeout(900)]

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto"


def site_config(secrets: Path) -> str:
    text = (DEPLOY / "site.conf").read_text()
    for shipped, here in [
        ("/etc/mosquitto/obsq/acl", str(secrets / "acl")),
        ("/etc/mosquitto/obsq/", f"{secrets}/"),
        ("/var/lib/mosquitto/", f"{secrets}/persistence/"),
        ("listener 8883\n", "listener {port} 127.0.0.1\n"),
        ("log_dest syslog", "log_dest stderr"),
    ]:
        assert shipped in text, shipped
        text = text.replace(shipped, here)
    return text


async def test_the_weekly_runs_on_the_site_broker_with_each_principal(root: str, tmp_path: Path) -> None:
    if mosquitto_path() is None or not shutil.which("openssl") or not shutil.which("mosquitto_passwd"):
        pytest.skip("needs mosquitto, mosquitto_passwd and openssl")
    folder = Path(tempfile.mkdtemp(prefix="obsq-site-"))  # mosquitto (its own user) must reach it
    secrets = folder / "secrets"
    cli = [sys.executable, "-m", "obsq.csc.cli"]
    env = {**os.environ, "OBSQ": " ".join(cli)}
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
    credentials = secrets / "credentials"
    url = f"mqtts://localhost:{broker.port}"
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
        for process in (weekly, up):
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        for log in logs:
            log.close()
        broker.close()
        shutil.rmtree(folder, ignore_errors=True)
