"""`obsq web` as a process under a hostile client (issue 23): a 300 MB body, a flood of wrong passwords."""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from obsq.csc.bus.brokers import MosquittoProcess

from .test_web import WebProcess

pytestmark = [pytest.mark.system, pytest.mark.timeout(300)]

MB = 1024 * 1024


@pytest.fixture
def web(root: str, tmp_path: Path) -> Iterator[WebProcess]:
    """`obsq web` on a Mosquitto that checks passwords (the page's logins are the broker's users)."""
    secrets = Path(tempfile.mkdtemp(prefix="obsq-web-broker-"))  # outside pytest's root-only folder
    secrets.chmod(0o755)  # mosquitto started as root reads these as the mosquitto user
    passwd = secrets / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwd), "operator", "the-right-one"], check=True)
    passwd.chmod(0o644)
    config = (f"per_listener_settings false\nlistener {{port}} 127.0.0.1\nallow_anonymous true\n"
              f"password_file {passwd}\npersistence false\nset_tcp_nodelay true\n")  # fmt: skip
    broker = MosquittoProcess(workdir=secrets, config=config)
    broker.start()
    (tmp_path / "data").mkdir()
    server = WebProcess(broker.url, root, tmp_path / "data")
    yield server
    server.close()
    broker.close()
    shutil.rmtree(secrets, ignore_errors=True)


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (the peak) of a process, in kB."""
    fields = {}
    for line in (Path("/proc") / str(pid) / "status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


def chunked_post(port: int, path: str, total_bytes: int) -> tuple[int, int]:
    """POST `total_bytes` of body in 1 MB chunks, generated as sent; (status, bytes sent before the answer)."""
    chunk = b"[" * MB
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=60) as conn:
        conn.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n".encode())  # fmt: skip
        try:
            while sent < total_bytes:
                conn.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                sent += len(chunk)
            conn.sendall(b"0\r\n\r\n")
        except OSError:  # the server answered and closed: it read no further
            pass
        answer = conn.makefile("rb").readline().decode()
    return int(answer.split()[1]), sent


def test_a_300_mb_unauthenticated_body_is_refused_as_it_comes(web: WebProcess) -> None:
    before = memory_kb(web.process.pid)
    status, sent = chunked_post(web.port, "/api/login", 300 * MB)
    after = memory_kb(web.process.pid)
    growth_mb = (after["VmHWM"] - before["VmRSS"]) / 1024
    print(f"300 MB chunked POST: {status} after {sent / MB:.0f} MB sent; server RSS {before['VmRSS'] / 1024:.0f} MB"
          f" -> peak {after['VmHWM'] / 1024:.0f} MB (+{growth_mb:.1f} MB)")  # fmt: skip
    assert status == 413
    assert growth_mb < 50
    # announced too large: refused before any of it is read
    conn = http.client.HTTPConnection("127.0.0.1", web.port, timeout=30)
    conn.putrequest("POST", "/api/login")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(300 * MB))
    conn.endheaders()
    assert conn.getresponse().status == 413
    conn.close()


def test_sixty_wrong_logins_meet_429_before_the_sixtieth(web: WebProcess) -> None:
    statuses = []
    for n in range(60):
        conn = http.client.HTTPConnection("127.0.0.1", web.port, timeout=60)
        conn.request("POST", "/api/login", json.dumps({"user": "operator", "password": f"guess{n}"}),
                     {"Content-Type": "application/json"})  # fmt: skip
        answer = conn.getresponse()
        statuses.append(answer.status)
        if answer.status == 429:
            assert int(answer.getheader("Retry-After", "0")) >= 1
        conn.close()
        if answer.status == 429:
            break
    assert statuses[-1] == 429, statuses
    assert len(statuses) < 60
    print(f"wrong logins before the first 429: {len(statuses) - 1}")
