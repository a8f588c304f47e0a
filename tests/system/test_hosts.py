"""Several hosts, one broker: the weekly across network namespaces, started as the systemd units start it.

The test makes three hosts of its own, network namespaces joined by veth pairs:

    telescope 10.199.1.2 ──veth── 10.199.1.1 broker host 10.199.2.1 ──veth── 10.199.2.2 queue host
    (ATCamera, ATDome, ATMCS,     (Mosquitto on site.conf, TLS,           (ScriptQueue:2, OCPS:1,
     ATSpectrograph, ATWhiteLight)  the ACL; PostgreSQL)                   the operator's `obsq weekly`)

Every process is started from deploy/systemd's units (their ExecStartPre/ExecStart lines, with
the units' EnvironmentFile= files: deploy/site/site.env with this test's values, and a
component file per instance), inside its host's namespace. Only install paths are substituted
(/etc/obsq, /opt/obsq, /usr/lib/obsq, /run): the command lines are the units'. Each process runs
as its own principal; the registries are on the broker host's PostgreSQL. No address but these
hosts' is used, and nothing is reachable from the machine's own namespace.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from obsq.csc.access import mosquitto_acl
from obsq.csc.bus.brokers import mosquitto_path

from .conftest import build_clientid_plugin, stop_processes
from .netns import REQUIRE_NETNS, Hosts
from .postgres import PostgresServer, require_binaries
from .test_weekly import planned_images

pytestmark = [pytest.mark.system, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
CLI = f"{shlex.quote(sys.executable)} -m obsq.csc.cli"
BROKER_IP = "10.199.1.1"
TELESCOPE = ("ATWhiteLight", "ATSpectrograph", "ATDome", "ATMCS", "ATCamera")
QUEUE_HOST = ("ScriptQueue:2", "OCPS:1")
#: as `obsq up --state enabled --state ATWhiteLight=standby --state OCPS=standby`: what the weekly expects
ENABLED = ("ATSpectrograph", "ATDome", "ATMCS", "ATCamera", "ScriptQueue:2")


def read_env(path: Path) -> dict[str, str]:
    """A systemd EnvironmentFile: KEY=value lines, # comments."""
    env = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env


@dataclass
class Unit:
    """A unit file's EnvironmentFile= and Exec lines, with this test's install paths."""

    path: Path
    paths: dict[str, str]

    def lines(self, key: str) -> list[str]:
        return [line.split("=", 1)[1] for line in self.path.read_text().splitlines() if line.startswith(f"{key}=")]

    def environment(self, instance: str) -> dict[str, str]:
        env: dict[str, str] = {}
        for spec in self.lines("EnvironmentFile"):
            optional, name = spec.startswith("-"), self.local(spec.lstrip("-"), instance)
            if Path(name).is_file():
                env |= read_env(Path(name))
            else:
                assert optional, f"{self.path.name}: {name} is missing"
        return env

    def local(self, text: str, instance: str = "") -> str:
        text = text.replace("%i", instance).replace("%I", instance)
        for shipped, here in self.paths.items():
            text = text.replace(shipped, here)
        return text

    def command(self, key: str, instance: str, env: dict[str, str]) -> list[str]:
        (line,) = self.lines(key)
        expanded = re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], self.local(line, instance))
        return shlex.split(expanded)


def status_of(output: str) -> dict[str, str]:
    """`obsq status` rows: the component and its summary state."""
    found = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) > 1 and parts[1] in ("STANDBY", "DISABLED", "ENABLED", "FAULT", "OFFLINE"):
            found[parts[0]] = parts[1]
    return found


def test_the_weekly_across_three_hosts_from_the_units(hosts: Hosts, root: str) -> None:
    mosquitto = mosquitto_path()
    if mosquitto is None or not shutil.which("openssl") or not shutil.which("mosquitto_passwd"):
        pytest.fail("needs mosquitto, mosquitto_passwd and openssl") if REQUIRE_NETNS else pytest.skip("no mosquitto")
    require_binaries()
    folder = Path(tempfile.mkdtemp(prefix="obsq-hosts-"))  # the mosquitto and postgres users must reach it
    folder.chmod(0o755)
    secrets, etc, run, data = folder / "secrets", folder / "etc", folder / "run", folder / "data"
    for made in (etc / "components", run, data):
        made.mkdir(parents=True)
    subprocess.run([str(DEPLOY / "mosquitto" / "make-secrets"), str(secrets), "--host", BROKER_IP],
                   env={**os.environ, "OBSQ": CLI}, check=True, capture_output=True)  # fmt: skip
    (secrets / "acl").write_text(mosquitto_acl(root))
    (secrets / "persistence").mkdir()
    secrets.chmod(0o755)
    (secrets / "persistence").chmod(0o777)
    for name in ("passwd", "acl", "server.key"):
        (secrets / name).chmod(0o644)
    # /etc/mosquitto/obsq/site.conf: the shipped file, its secrets' folder and persistence here, log to stderr
    conf = (DEPLOY / "mosquitto" / "site.conf").read_text()
    for shipped, here in [("/usr/lib/obsq/obsq_clientid.so", str(build_clientid_plugin(secrets))),
                          ("/etc/mosquitto/obsq/", f"{secrets}/"), ("/var/lib/mosquitto/", f"{secrets}/persistence/"),
                          ("log_dest syslog", "log_dest stderr")]:  # fmt: skip
        assert shipped in conf, shipped
        conf = conf.replace(shipped, here)
    (secrets / "site.conf").write_text(conf)
    # /etc/obsq/site.env: the shipped file with this site's values (every key of it is given one)
    shipped_env = read_env(DEPLOY / "site" / "site.env")
    site = {
        "OBSQ_BROKER": f"mqtts://{BROKER_IP}:8883", "OBSQ_BROKER_BIND": BROKER_IP, "OBSQ_BROKER_PORT": "8883",
        "OBSQ_BROKER_LOG_DENIED": "yes", "OBSQ_ROOT": root, "OBSQ_CREDENTIALS_DIR": str(secrets / "credentials"),
        "OBSQ_CA_FILE": str(secrets / "ca.crt"), "OBSQ_DATA": str(data),
        "OBSQ_DATABASE": f"postgresql://obsq@{BROKER_IP}:5432/postgres", "OBSQ_STATE": "standby",
        "OBSQ_SPEED": "600", "OBSQ_DEVICES": "",  # every member on its simulator
    }  # fmt: skip
    assert set(site) == set(shipped_env), set(shipped_env) ^ set(site)
    site["OBSQ_EPOCH"] = repr(time.time() + 37.0)
    (etc / "site.env").write_text("".join(f"{k}={v}\n" for k, v in site.items()))
    for name in ENABLED:  # /etc/obsq/components/NAME.env
        (etc / "components" / f"{name}.env").write_text("OBSQ_STATE=enabled\n")
    paths = {"/etc/obsq/": f"{etc}/", "/opt/obsq/venv/bin/obsq": CLI, "/usr/lib/obsq/render-conf":
             str(DEPLOY / "mosquitto" / "render-conf"), "/etc/mosquitto/obsq/": f"{secrets}/",
             "/run/obsq-broker/": f"{run}/", "/usr/sbin/mosquitto": mosquitto}  # fmt: skip
    broker_unit = Unit(DEPLOY / "systemd" / "obsq-broker.service", paths)
    csc_unit = Unit(DEPLOY / "systemd" / "obsq-csc@.service", paths)
    logs: list[Any] = []
    processes: list[subprocess.Popen[bytes]] = []
    database = PostgresServer(host=BROKER_IP, port=5432, clients="10.199.0.0/16", password=uuid.uuid4().hex)
    pgpass = folder / "pgpass"  # ~obsq/.pgpass on each host
    pgpass.write_text(f"{BROKER_IP}:5432:*:obsq:{database.password}\n")
    pgpass.chmod(0o600)

    def start(host: str, argv: list[str], env: dict[str, str], log: str) -> subprocess.Popen[bytes]:
        out = (folder / log).open("wb")
        logs.append(out)
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("OBSQ_", "PG"))}
        clean["PGPASSFILE"] = str(pgpass)
        process = subprocess.Popen([*hosts.wrap(host), *argv], env=clean | env, stdout=out, stderr=subprocess.STDOUT)
        processes.append(process)
        return process

    def operator(host: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        env = {"OBSQ_CREDENTIALS": str(secrets / "credentials" / "operator.env"), "PATH": os.environ["PATH"]}
        return subprocess.run([*hosts.wrap(host), *shlex.split(CLI), *args, "--broker", site["OBSQ_BROKER"],
                               "--root", root], env=env, capture_output=True, text=True, timeout=timeout,
                              check=False)  # fmt: skip

    try:
        env = broker_unit.environment("") | {"PATH": os.environ["PATH"]}  # systemd gives a unit its PATH
        pre = subprocess.run([*hosts.wrap("b"), *broker_unit.command("ExecStartPre", "", env)], env=env,
                             capture_output=True, text=True, check=False)  # fmt: skip
        assert pre.returncode == 0, pre.stderr
        rendered = (run / "mosquitto.conf").read_text()
        assert f"\nlistener 8883 {BROKER_IP}\n" in rendered
        assert "\nlog_type debug\n" in rendered
        start("b", broker_unit.command("ExecStart", "", env), env, "broker.log")
        database.start(wrap=hosts.wrap("b"))
        listening = subprocess.run([*hosts.wrap("b"), "ss", "-ltnH"], capture_output=True, text=True, check=True)
        assert f"{BROKER_IP}:8883" in listening.stdout, listening.stdout
        assert not re.search(r"(0\.0\.0\.0|\*|\[::\]):8883", listening.stdout), listening.stdout  # not every interface
        for host, instances in (("t", TELESCOPE), ("q", QUEUE_HOST)):
            for instance in instances:
                env = csc_unit.environment(instance)
                start(host, csc_unit.command("ExecStart", instance, env), env, f"{instance.replace(':', '-')}.log")
        expected = {name: "ENABLED" if name in ENABLED else "STANDBY" for name in (*TELESCOPE, *QUEUE_HOST)}
        deadline = time.monotonic() + 120
        seen: dict[str, str] = {}
        while seen != expected and time.monotonic() < deadline:
            dead = [Path(logs[processes.index(p)].name) for p in processes if p.poll() is not None]
            assert not dead, "\n".join(f"{log.name} exited:\n{log.read_text()[-3000:]}" for log in dead)
            seen = status_of(operator("q", "status", "--wait", "2").stdout)
            seen = {k.replace(":0", ""): v for k, v in seen.items() if k.replace(":0", "") in expected}
        assert seen == expected, seen
        weekly = operator("q", "weekly", "--speed", "600", "--data", str(folder / "weekly"), timeout=800)
        assert weekly.returncode == 0, weekly.stdout[-4000:] + weekly.stderr[-2000:]
        assert "all scripts DONE" in weekly.stdout
        assert not list(data.rglob("*.sqlite3")) or {p.name for p in data.rglob("*.sqlite3")} <= {
            "OCPS-1-commands.sqlite3",
            "ScriptQueue-2-commands.sqlite3",
        }  # fmt: skip  - only the command ledgers, each process's own
        psql = [*hosts.wrap("b"), str(database.bin / "psql"), "-h", BROKER_IP, "-p", "5432", "-U", "obsq", "-At",
                "-d", "postgres", "-c"]  # fmt: skip
        as_obsq = {"PGPASSFILE": str(pgpass), "PATH": os.environ["PATH"]}
        rows = subprocess.run([*psql, "SELECT imgtype, filter, grating, exptime FROM acquired_images"],
                              capture_output=True, text=True, check=True, env=as_obsq).stdout.splitlines()  # fmt: skip
        taken = Counter((t, f, g, float(e)) for t, f, g, e in (r.split("|") for r in rows))
        assert taken == planned_images()
        certified = subprocess.run([*psql, "SELECT COUNT(*) FROM certifications"], capture_output=True, text=True,
                                   check=True, env=as_obsq).stdout  # fmt: skip
        assert int(certified) >= 4
        # a component publishing another's event is refused, and the broker's log says so
        dome = read_env(secrets / "credentials" / "ATDome.env")
        forged = f"{root}/ATCamera/0/evt/summaryState"
        subprocess.run([*hosts.wrap("t"), "mosquitto_pub", "-h", BROKER_IP, "-p", "8883", "--cafile",
                        str(secrets / "ca.crt"), "-u", "ATDome", "-P", dome["OBSQ_PASSWORD"], "-q", "1", "-t", forged,
                        "-m", "{}", "-i", "ATDome-forger"], check=True, capture_output=True)  # fmt: skip
        # (its client id begins with its user name: the site broker refuses any other, obsq_clientid.c)
        deadline = time.monotonic() + 120  # bounds a hang only
        while "Denied PUBLISH" not in (folder / "broker.log").read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        denied = [line for line in (folder / "broker.log").read_text().splitlines() if "Denied PUBLISH" in line]
        assert any(forged in line for line in denied), denied[-5:]
    finally:
        stop_processes(*reversed(processes))
        database.stop()
        for log in logs:
            log.close()
        shutil.rmtree(folder, ignore_errors=True)
