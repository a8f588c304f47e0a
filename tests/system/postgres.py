"""A PostgreSQL server of the tests' own: Debian's postgresql binaries on a private port and data folder.

Nothing of the machine's own server is used (it may or may not run). The server trusts local
connections on 127.0.0.1 (or the address it is told to listen on), runs as the `postgres` user
(through setpriv, which execs: signals reach the server) when the tests run as root (initdb
refuses root), and goes away with its folder. Where the
binaries are missing the PostgreSQL tests skip with a reason — unless $OBSQ_REQUIRE_POSTGRESQL
is set (as .ci/run does), where they fail.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from obsq.csc.bus.brokers import free_port
from obsq.csc.clock import blocking_sleep

REQUIRE_POSTGRESQL = bool(os.environ.get("OBSQ_REQUIRE_POSTGRESQL"))
USER = "obsq"


def bin_dir() -> Path | None:
    """Debian keeps the server's programs in /usr/lib/postgresql/VERSION/bin (the newest wins)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def require_binaries() -> Path:
    folder = bin_dir()
    if folder is None:
        if REQUIRE_POSTGRESQL:
            pytest.fail("PostgreSQL is required ($OBSQ_REQUIRE_POSTGRESQL) but its server is not installed")
        pytest.skip("PostgreSQL server not installed (apt-get install postgresql); PostgreSQL tests skipped")
    return folder


class PostgresServer:
    """`postgres` on `host:port` with its data in a temporary folder; `database()` makes an empty database."""

    def __init__(
        self, host: str = "127.0.0.1", port: int | None = None, *, clients: str = "", password: str = ""
    ) -> None:
        """`clients`: a network (CIDR) whose hosts may connect with `password` (scram-sha-256)."""
        self.bin = require_binaries()
        self.host = host
        self.port = port or free_port()
        self.clients = clients
        self.password = password
        self.folder = Path(tempfile.mkdtemp(prefix="obsq-pg-"))
        self.process: subprocess.Popen[bytes] | None = None
        self._wrap: list[str] | None = None
        self._as: list[str] = []
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.folder, owner.pw_uid, owner.pw_gid)
            self._as = ["setpriv", f"--reuid={owner.pw_uid}", f"--regid={owner.pw_gid}", "--init-groups"]

    def start(self, *, wrap: list[str] | None = None) -> None:
        """initdb, then the server; `wrap` runs it inside something (e.g. `ip netns exec NAME`)."""
        data = self.folder / "data"
        subprocess.run(
            [*self._as, str(self.bin / "initdb"), "-D", str(data), "-U", USER, "--auth=trust", "-E", "UTF8",
             "--no-sync"], check=True, capture_output=True,
        )  # fmt: skip
        if self.clients:
            with (data / "pg_hba.conf").open("a") as hba:
                hba.write(f"host all all {self.clients} scram-sha-256\n")
        self._wrap = wrap
        self._serve()

    def _serve(self) -> None:
        """The server on the data folder initdb made (again, after `interrupt`)."""
        wrap, data = self._wrap, self.folder / "data"
        log = self.folder / "server.log"
        argv = [*(wrap or []), *self._as, str(self.bin / "postgres"), "-D", str(data), "-p", str(self.port),
                "-k", str(self.folder), "-c", f"listen_addresses={self.host}", "-c", "fsync=off",
                "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]  # fmt: skip
        with log.open("ab") as out:
            self.process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        for _ in range(300):
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited: {log.read_text()[-2000:]}")
            ready = subprocess.run(
                [*(wrap or []), str(self.bin / "pg_isready"), "-h", self.host, "-p", str(self.port), "-U", USER],
                check=False, capture_output=True,
            )  # fmt: skip
            if ready.returncode == 0:
                if self.password:
                    subprocess.run(
                        [str(self.bin / "psql"), "-h", str(self.folder), "-p", str(self.port), "-U", USER,
                         "-d", "postgres", "-c", f"ALTER USER {USER} PASSWORD '{self.password}'"],
                        check=True, capture_output=True,
                    )  # fmt: skip
                return
            blocking_sleep(0.1)
        raise RuntimeError(f"postgres did not accept connections in 30 s: {log.read_text()[-2000:]}")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}@{self.host}:{self.port}/{database}"

    def database(self) -> str:
        """A new, empty database; its URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def interrupt(self) -> None:
        """Stop the server as a restart or an outage does (fast shutdown: clients are cut off); data kept."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            self.process.wait(30)

    def resume(self) -> None:
        """Start the server again on its data after `interrupt`."""
        self._serve()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # fast shutdown: clients still connected are cut off
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(10)
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)
