"""The tests' own hosts: network namespaces joined by veth pairs (root and iproute2).

    telescope (t) 10.199.1.2 ──veth── 10.199.1.1 host b 10.199.2.1 ──veth── 10.199.2.2 (q)

`hosts` makes them for one test and removes them after; without root or iproute2 the test skips
with a reason, unless $OBSQ_REQUIRE_NETNS is set (as .ci/run does), where it fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

REQUIRE_NETNS = bool(os.environ.get("OBSQ_REQUIRE_NETNS"))


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@dataclass
class Hosts:
    """Three namespaces: broker (B), telescope (T), queue (Q)."""

    tag: str
    names: dict[str, str] = field(default_factory=dict)

    def make(self) -> None:
        for host in "btq":
            self.names[host] = f"{self.tag}{host}"
            ip("netns", "add", self.names[host])
            ip("-n", self.names[host], "link", "set", "lo", "up")
        b, t, q = self.names["b"], self.names["t"], self.names["q"]
        for other, net in ((t, 1), (q, 2)):
            here, there = f"{self.tag}b{other[-1]}", f"{self.tag}{other[-1]}b"
            ip("link", "add", here, "netns", b, "type", "veth", "peer", "name", there, "netns", other)
            ip("-n", b, "addr", "add", f"10.199.{net}.1/24", "dev", here)
            ip("-n", other, "addr", "add", f"10.199.{net}.2/24", "dev", there)
            ip("-n", b, "link", "set", here, "up")
            ip("-n", other, "link", "set", there, "up")
            ip("-n", other, "route", "add", "default", "via", f"10.199.{net}.1")

    def wrap(self, host: str) -> list[str]:
        return ["ip", "netns", "exec", self.names[host]]

    def remove(self) -> None:
        for name in self.names.values():
            subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        if REQUIRE_NETNS:
            pytest.fail("network namespaces are required ($OBSQ_REQUIRE_NETNS): run as root with iproute2")
        pytest.skip("needs root and iproute2 (ip netns) for the test's own hosts")
    made = Hosts(f"oq{os.getpid() % 100000}")
    try:
        made.make()
    except subprocess.CalledProcessError as exc:
        made.remove()
        if REQUIRE_NETNS:
            raise
        pytest.skip(f"cannot make network namespaces here: {exc.stderr.decode().strip()}")
    try:
        yield made
    finally:
        made.remove()
