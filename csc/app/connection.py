"""How a command reaches the broker: the connection options every bus command takes."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

from obsq.csc.bus.brokers import EmbeddedBroker, port_open
from obsq.csc.bus.credentials import Credentials, CredentialsError
from obsq.csc.bus.mqtt import MqttBus
from obsq.csc.bus.url import DEFAULT_BROKER_URL, BrokerUrl
from obsq.csc.clock import Clock
from obsq.csc.component import Remote
from obsq.csc.core.errors import BusDisconnectedError, TopicError, UsageError
from obsq.csc.core.topics import DEFAULT_ROOT, check_root

#: How long a command line waits for its target's heartbeat before saying it is not running (s).
LIVE_WITHIN_S = 2.0
#: How long a command line waits for a live target's first ack before asking about permissions (s).
FIRST_ACK_S = 10.0


@dataclass(frozen=True)
class Connection:
    """`--broker` (or $OBSQ_BROKER; None: the embedded broker's default address), credentials, root.

    The password comes from `--credentials FILE`, `$OBSQ_CREDENTIALS` or `$OBSQ_PASSWORD`
    (`obsq.csc.bus.credentials`), or from a URL in `$OBSQ_BROKER` — never from a URL on the
    command line, which every user of the host can read.
    """

    broker: str | None = None
    username: str | None = None
    credentials: Path | None = None
    ca_file: str | None = None
    connect_timeout_s: float = 10.0
    root: str = DEFAULT_ROOT
    broker_from_command_line: bool = False

    @property
    def given(self) -> bool:
        """Whether a broker was named (else the embedded broker's default address is used)."""
        return self.broker is not None

    def url(self) -> BrokerUrl:
        """The broker's address with this process's credentials (UsageError naming what is wrong)."""
        try:
            url = BrokerUrl.parse(self.broker or DEFAULT_BROKER_URL, ca_file=self.ca_file)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        if url.password and self.broker_from_command_line:
            raise UsageError(
                "--broker: a password on the command line is visible to every user of this host; put it in a"
                " credentials file (--credentials FILE with OBSQ_PASSWORD=…, chmod 600) or in $OBSQ_PASSWORD"
            )
        try:
            own = Credentials.from_file(self.credentials) if self.credentials else Credentials.from_environment()
        except CredentialsError as exc:
            raise UsageError(str(exc)) from None
        url = own.apply(url)
        if self.ca_file:
            url = replace(url, ca_file=self.ca_file)
        if self.username:
            url = replace(url, username=self.username)
        return url

    def checked_root(self) -> str:
        try:
            return check_root(self.root)
        except TopicError as exc:
            raise UsageError(str(exc)) from None


@contextlib.asynccontextmanager
async def broker_for(connection: Connection, *, start_if_missing: bool = True) -> AsyncIterator[BrokerUrl]:
    """The broker's URL; at the default address with nothing listening, the embedded broker in this process."""
    url = connection.url()
    if not connection.given and not port_open(url.host, url.port):
        if not start_if_missing:
            raise UsageError(f"no broker at {url}: start one with `obsq broker`, or give --broker URL")
        print(f"obsq: no broker at {url}; starting the embedded broker in this process", file=sys.stderr)
        async with EmbeddedBroker(url.host, url.port):
            yield url
    else:
        yield url


@contextlib.asynccontextmanager
async def connected_bus(
    connection: Connection, url: BrokerUrl, *, clock: Clock | None = None, client_id: str | None = None
) -> AsyncIterator[MqttBus]:
    """A started MqttBus on `url`, closed on the way out; a refused connection is a UsageError."""
    bus = MqttBus(url, client_id=client_id, connect_timeout_s=connection.connect_timeout_s, clock=clock)
    try:
        await bus.start()
    except BusDisconnectedError as exc:
        raise UsageError(str(exc)) from None
    try:
        yield bus
    finally:
        await bus.close()


async def require_live(remote: Remote, url: BrokerUrl) -> None:
    """UsageError at once (within LIVE_WITHIN_S) if `remote`'s component shows no fresh heartbeat."""
    if not await remote.wait_live(LIVE_WITHIN_S):
        age = remote.heartbeat_age_s()
        seen = "no heartbeat" if age is None else f"its last heartbeat is {age:.0f} s old"
        raise UsageError(f"{remote.id} is not running ({seen} on {url})")
