"""The deployment files: the units read the one site file, render-conf binds the listener and refuses the rest."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from obsq.csc.build import RUNNABLE

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RENDER = DEPLOY / "mosquitto" / "render-conf"


def render(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RENDER), str(DEPLOY / "mosquitto" / "site.conf"), str(tmp_path / "out.conf")],
        env={"PATH": os.environ["PATH"], **env}, capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_render_conf_binds_the_site_address(tmp_path: Path) -> None:
    done = render(tmp_path, OBSQ_BROKER_BIND="10.20.30.40", OBSQ_BROKER_PORT="18883")
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "out.conf").read_text()
    assert re.findall(r"^listener .*$", text, re.MULTILINE) == ["listener 18883 10.20.30.40"]
    assert "log_type debug" not in text
    assert render(tmp_path, OBSQ_BROKER_BIND="::1", OBSQ_BROKER_LOG_DENIED="yes").returncode == 0
    assert "\nlog_type debug\n" in (tmp_path / "out.conf").read_text()  # where Mosquitto 2.0 logs a denied publish


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({}, "OBSQ_BROKER_BIND is not set"),
        ({"OBSQ_BROKER_BIND": "0.0.0.0"}, "every interface"),
        ({"OBSQ_BROKER_BIND": "::"}, "every interface"),
        ({"OBSQ_BROKER_BIND": "1.2.3.4/x; rm -rf"}, "an IP address or host name"),
        ({"OBSQ_BROKER_BIND": "10.0.0.1", "OBSQ_BROKER_PORT": "88a"}, "is not a port number"),
    ],
)
def test_render_conf_refuses_what_is_not_one_address(tmp_path: Path, env: dict[str, str], says: str) -> None:
    done = render(tmp_path, **env)
    assert done.returncode == 2
    assert says in done.stderr
    assert not (tmp_path / "out.conf").exists()  # nothing half-written


def test_every_unit_reads_the_site_file_and_uses_only_its_keys() -> None:
    site = {line.split("=", 1)[0] for line in (DEPLOY / "site" / "site.env").read_text().splitlines()
            if line and not line.startswith("#")}  # fmt: skip
    for unit in (DEPLOY / "systemd").glob("*.service"):
        text = unit.read_text()
        assert "EnvironmentFile=/etc/obsq/site.env" in text, unit.name
        used = set(re.findall(r"\$\{(\w+)\}", text))
        assert used <= site, (unit.name, used - site)
        assert "PASSWORD" not in text  # nothing secret on a command line


def test_the_component_unit_names_runnable_components() -> None:
    text = (DEPLOY / "systemd" / "obsq-csc@.service").read_text()
    named = set(re.findall(r"obsq-csc@(\w+)", text))
    assert named <= set(RUNNABLE), named - set(RUNNABLE)
    assert {"ATCamera", "ScriptQueue", "OCPS"} <= named


def test_every_shipped_mosquitto_configuration_carries_the_settings_obsq_needs() -> None:
    """max_queued_messages (a burst over 1,000 lost acks silently) and set_tcp_nodelay (~45 ms a hop without)."""
    repo = Path(__file__).parents[2]
    configurations = [repo / "deploy/mosquitto/site.conf", repo / "deploy/mosquitto/local.conf",
                      repo / "csc/bus/mosquitto-local.conf"]  # fmt: skip
    for path in configurations:
        settings = dict(
            line.split(None, 1) for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")
        )
        assert settings.get("max_queued_messages") == "10000", path
        assert settings.get("set_tcp_nodelay") == "true", path
