"""A connection to an INDI server, on the event loop: its devices' properties kept, changes awaited.

`IndiConnection` reads the server's stream into an IndiReader, so every device's properties
are at hand (`vector`); a driver sends a `new…Vector` (`send`) and awaits the property's answer
(`wait_until`), with a bound in real seconds of its own. The connection lost, the server not
there, or a wait run out is a DeviceError naming the server, the device and what was awaited;
a property that goes Alert carries the device's last message.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable

from obsq.csc.clock import Clock
from obsq.csc.core.errors import DeviceError, DeviceTimeoutError, DeviceUnreachableError
from obsq.csc.indi.protocol import IndiProtocolError, IndiReader, Vector, enable_blob, get_properties, new_vector

#: Real seconds to connect to an INDI server.
CONNECT_TIMEOUT_S = 5.0
#: A request to a device: the property's name, its type (Number, Switch) and the values asked for.
Request = tuple[str, str, dict[str, str | float | bool]]
#: Times a device left off after a connect request is asked again (a driver still starting may ignore one).
CONNECT_ATTEMPTS = 3
#: Real seconds between two connect requests.
CONNECT_RETRY_S = 2.0
#: Bytes read from the stream at a time.
READ_BYTES = 1 << 16
#: A device's log lines kept (its `message`s), to explain an Alert.
MESSAGES_KEPT = 20


class IndiConnection:
    """One INDI server (`host`:`port`), shared by the drivers of the devices it serves."""

    def __init__(self, host: str, port: int, clock: Clock) -> None:
        self.host = host
        self.port = port
        self.where = f"indi://{host}:{port}"
        self.clock = clock.unscaled()
        self.reader = IndiReader()
        self.messages: dict[str, collections.deque[str]] = collections.defaultdict(
            lambda: collections.deque(maxlen=MESSAGES_KEPT)
        )
        #: How many times each property was defined or set: a driver awaits the next one (a new image).
        self.generations: collections.Counter[tuple[str, str]] = collections.Counter()
        #: How many times each property was set (a device's answers; a definition, sent again to every client, is not).
        self.answers: collections.Counter[tuple[str, str]] = collections.Counter()
        self._changed = asyncio.Event()
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._lost: str = ""

    @property
    def connected(self) -> bool:
        return self._writer is not None and not self._lost

    async def open(self) -> None:
        """Connect and ask for every property; DeviceUnreachableError if the server is not there."""
        if self.connected:
            return
        await self.close()
        try:
            reader, writer = await self.clock.wait_for(asyncio.open_connection(self.host, self.port), CONNECT_TIMEOUT_S)
        except TimeoutError:
            raise DeviceUnreachableError(f"{self.where}: no connection within {CONNECT_TIMEOUT_S:g} s") from None
        except OSError as exc:
            raise DeviceUnreachableError(f"{self.where}: cannot connect ({exc.strerror or exc})") from None
        self.reader = IndiReader()
        self._lost = ""
        self._writer = writer
        self._task = asyncio.get_running_loop().create_task(self._read(reader), name=f"indi {self.where}")
        await self._write(get_properties())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task})
            self._task = None
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await self._writer.wait_closed()
            self._writer = None

    def vector(self, device: str, name: str) -> Vector | None:
        return self.reader.properties.get((device, name))

    def last_message(self, device: str) -> str:
        lines = self.messages.get(device)
        return lines[-1] if lines else ""

    async def send(self, device: str, name: str, type_: str, values: dict[str, str | float | bool]) -> None:
        """Ask `device` to set `values` of its property `name`."""
        await self._write(new_vector(device, name, type_, values))

    async def request(
        self, device: str, request: Request, timeout_s: float, what: str, *, busy_is_done: bool = False
    ) -> Vector:
        """Ask `device` for (property, type, values); wait for its answer, then while it is Busy.

        `busy_is_done`: Busy is the answer (INDI reports tracking so). DeviceTimeoutError after
        `timeout_s`; the device's Alert is a DeviceError with its last message.
        """
        name, type_, values = request
        vector = self.vector(device, name)
        if vector is None:
            raise DeviceError(f"{self.where}/{device}: the device has no {name} (disconnected?)")
        asked = self.answers[(device, name)]
        await self.send(device, name, type_, values)
        await self.wait_until(
            lambda: self.answers[(device, name)] > asked and (busy_is_done or vector.state != "Busy"), timeout_s, what
        )
        if vector.state == "Alert":
            raise alert(self, vector, what)
        return vector

    async def receive_blobs(self, device: str) -> None:
        """Ask the server to send `device`'s images on this connection."""
        await self._write(enable_blob(device))

    async def connect_device(self, device: str, wait_s: float, *properties: str) -> None:
        """The server open, `device` connected (its CONNECTION switch) and `properties` defined."""
        await self.open()
        await self.wait_until(lambda: self.vector(device, "CONNECTION") is not None, wait_s,
                              f"device {device!r} on the server")  # fmt: skip
        connection = self.vector(device, "CONNECTION")
        assert connection is not None
        for attempt in range(1, CONNECT_ATTEMPTS + 1):
            if connection.values.get("CONNECT") == "On" and connection.state != "Busy":
                break
            asked = self.answers[(device, "CONNECTION")]
            await self.send(device, "CONNECTION", "Switch", {"CONNECT": True, "DISCONNECT": False})
            try:  # answered, and not Busy: connected, refused (Alert), or left off (a driver not ready: again)
                await self.wait_until(_answered(self, device, "CONNECTION", asked), wait_s, f"{device} to connect")
            except DeviceTimeoutError as exc:
                said = self.last_message(device)
                raise DeviceTimeoutError(
                    f"{exc} (CONNECTION {connection.state}, CONNECT"
                    f" {connection.values.get('CONNECT')})" + (f": {said}" if said else "")
                ) from None
            if connection.state == "Alert":
                raise alert(self, connection, "connecting")
            if connection.values.get("CONNECT") != "On":
                if attempt == CONNECT_ATTEMPTS:
                    raise alert(self, connection, f"connecting ({CONNECT_ATTEMPTS} requests left it off)")
                await self.clock.sleep(CONNECT_RETRY_S)
        await self.wait_until(lambda: all(self.vector(device, p) is not None for p in properties), wait_s,
                              f"{device}'s {', '.join(properties)}")  # fmt: skip

    async def wait_until(self, done: Callable[[], bool], timeout_s: float, what: str) -> None:
        """Until `done()` is true; DeviceTimeoutError naming `what` after `timeout_s` real s, or the link lost."""
        deadline = self.clock.monotonic() + timeout_s
        while not done():
            if self._lost:
                raise DeviceUnreachableError(f"{self.where}: {self._lost} while waiting for {what}")
            left = deadline - self.clock.monotonic()
            if left <= 0:
                raise DeviceTimeoutError(f"{self.where}: {what} did not happen within {timeout_s:g} s")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await self.clock.wait_for(self._changed.wait(), left)

    async def _write(self, data: bytes) -> None:
        if self._writer is None or self._lost:
            raise DeviceUnreachableError(f"{self.where}: not connected" + (f" ({self._lost})" if self._lost else ""))
        try:
            self._writer.write(data)
            await self.clock.wait_for(self._writer.drain(), CONNECT_TIMEOUT_S)
        except (OSError, ConnectionError, TimeoutError) as exc:
            self._lose(f"the connection failed ({type(exc).__name__})")
            raise DeviceUnreachableError(f"{self.where}: the connection failed while sending") from None

    async def _read(self, stream: asyncio.StreamReader) -> None:
        try:
            while True:
                data = await stream.read(READ_BYTES)
                if not data:
                    self._lose("the server closed the connection")
                    return
                for update in self.reader.feed(data):
                    if update.message:
                        self.messages[update.device].append(update.message)
                    if update.vector is not None:
                        self.generations[(update.device, update.name)] += 1
                        if update.kind == "set":
                            self.answers[(update.device, update.name)] += 1
                self._changed.set()
        except IndiProtocolError as exc:
            self._lose(f"the server's stream is broken ({exc})")
        except (OSError, ConnectionError) as exc:
            self._lose(f"the connection failed ({type(exc).__name__})")

    def _lose(self, why: str) -> None:
        self._lost = why
        self._changed.set()


def _answered(link: IndiConnection, device: str, name: str, asked: int) -> Callable[[], bool]:
    """Has `device` set its property `name` since its answer number `asked`, and is it no longer Busy?"""

    def done() -> bool:
        vector = link.vector(device, name)
        return link.answers[(device, name)] > asked and vector is not None and vector.state != "Busy"

    return done


def alert(connection: IndiConnection, vector: Vector, what: str) -> DeviceError:
    """The error for a property that went Alert: the device's own last message says why."""
    said = connection.last_message(vector.device)
    return DeviceError(
        f"{connection.where}/{vector.device}: {vector.name} went Alert while {what}" + (f": {said}" if said else "")
    )
