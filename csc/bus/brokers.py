"""Brokers obsq can start itself: the embedded amqtt broker and a local Mosquitto process.

- `EmbeddedBroker`: amqtt 0.12 in this process's event loop, bound to loopback (amqtt
  listens on every interface unless told otherwise). The default for one machine. amqtt
  0.12.1 needs three work-arounds so that clients may come and go and Ctrl-C may come at any
  time without a traceback: its subscription table iterated over a copy
  (`SnapshotIterationDict`), what its tasks leave unretrieved logged as one line
  (`AmqttExceptionFilter`, `AmqttLostWritesFilter`), and the cancellations Python 3.11 loses
  re-delivered at stop (`recancel_amqtt_tasks`).
- `MosquittoProcess`: a `mosquitto` child process from `deploy/mosquitto/local.conf`
  (shipped in the package as `mosquitto-local.conf`), on a port of our choosing. Tests,
  benchmarks and `obsq broker --engine mosquitto` use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import shutil
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, ItemsView, Iterator
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import Any

import structlog

from obsq.csc.bus.url import BrokerUrl
from obsq.csc.clock import LoopClock, blocking_sleep, wait_for

log = structlog.get_logger("obsq.bus.brokers")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    """True if something accepts TCP connections at host:port."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


async def wait_port(host: str, port: int, timeout_s: float) -> None:
    """Wait until something accepts connections at host:port."""
    clock = LoopClock()

    async def poll() -> None:
        while not port_open(host, port):
            await clock.sleep(0.02)

    await wait_for(clock, poll(), timeout_s)


#: the amqtt release whose `Broker._subscriptions` iteration `SnapshotIterationDict` works around
AMQTT_PATCHED_VERSION = "0.12.1"


class SnapshotIterationDict(dict[str, Any]):
    """A dict whose iteration runs over a copy, so the loop body may await while others change it.

    amqtt 0.12.1 (and its main branch, December) loops over `Broker._subscriptions` with awaits in
    the loop body: `_handle_client_session` awaits the retained-message republishing for every filter,
    `_run_broadcast` awaits topic filtering. Meanwhile other clients' sessions add and delete
    filters, the loop raises "dictionary changed size during iteration", the new client's session
    dies after CONNACK and asyncio prints the traceback. Iterating a snapshot is the usual fix
    (`list(d)`); a filter deleted meanwhile is still visited, which amqtt's loops tolerate (its
    list is empty, or the KeyError is caught).
    """

    def __iter__(self) -> Iterator[str]:
        return iter(dict.copy(self))

    def items(self) -> ItemsView[str, Any]:  # type: ignore[override]  # a view of a copy, not of self
        return dict.copy(self).items()


def snapshot_subscription_iteration(broker: Any) -> None:
    """Give an amqtt Broker a subscription table that survives clients coming and going.

    Raises:
        RuntimeError: amqtt is not the release this was written against, or it has changed the
            attribute; re-read amqtt/broker.py before moving the pin in pyproject.toml.
    """
    import amqtt

    version = getattr(amqtt, "__version__", "?")
    table = getattr(broker, "_subscriptions", None)
    if version != AMQTT_PATCHED_VERSION or type(table) is not dict or table:
        raise RuntimeError(
            f"obsq's work-around for amqtt {AMQTT_PATCHED_VERSION} (csc/bus/brokers.py) does not fit amqtt {version}:"
            " check whether Broker still iterates _subscriptions across awaits, then update or drop it"
        )
    broker._subscriptions = SnapshotIterationDict()  # noqa: SLF001 — the guarded work-around itself


ExceptionHandler = Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object]

#: how amqtt's tasks fail when a client leaves mid-exchange (a PUBACK that never comes, a reset)
#: or the broker stops under them; amqtt's own errors of that kind are added from amqtt.errors
_CLIENT_GONE_ERRORS: tuple[type[BaseException], ...] = (
    TimeoutError,
    ConnectionError,
    asyncio.IncompleteReadError,
    asyncio.CancelledError,
)


@functools.cache
def amqtt_directory() -> Path:
    import amqtt

    return Path(amqtt.__file__).parent


def _in_directory(filename: str, directory: Path) -> bool:
    return Path(filename).is_relative_to(directory)


def _raised_in(traceback: TracebackType | None, directory: Path) -> bool:
    while traceback is not None:
        if _in_directory(traceback.tb_frame.f_code.co_filename, directory):
            return True
        traceback = traceback.tb_next
    return False


class AmqttExceptionFilter:
    """An event-loop exception handler: amqtt's failures as one log line, everything else passed on.

    amqtt leaves exceptions of its own tasks unretrieved (the PUBACK a departed client never
    sends, the teardown at Ctrl-C), and asyncio prints each with its traceback. Failures a
    departing client causes are logged at debug; any other failure raised in amqtt is a warning,
    still without a traceback. Exceptions not raised in amqtt go to the previous handler.
    """

    def __init__(self, previous: ExceptionHandler | None) -> None:
        from amqtt.errors import MQTTError, NoDataError, ProtocolHandlerError

        self.previous = previous
        self._amqtt_dir = amqtt_directory()
        self._quiet_errors = (*_CLIENT_GONE_ERRORS, MQTTError, NoDataError, ProtocolHandlerError)

    def from_amqtt(self, context: dict[str, Any]) -> bool:
        exc = context.get("exception")
        if isinstance(exc, BaseException) and _raised_in(exc.__traceback__, self._amqtt_dir):
            return True
        task = context.get("future") or context.get("task")
        code = getattr(task.get_coro(), "cr_code", None) if isinstance(task, asyncio.Task) else None
        return code is not None and _in_directory(code.co_filename, self._amqtt_dir)

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if not self.from_amqtt(context):
            if self.previous is None:
                loop.default_exception_handler(context)
            else:
                self.previous(loop, context)
            return
        exc = context.get("exception")
        report = log.debug if exc is None or isinstance(exc, self._quiet_errors) else log.warning
        report("embedded_broker_error", message=context.get("message"), error=repr(exc))

    @classmethod
    def install(cls, loop: asyncio.AbstractEventLoop) -> None:
        """Put a filter in front of `loop`'s handler, once per loop."""
        previous = loop.get_exception_handler()
        if not isinstance(previous, cls):
            loop.set_exception_handler(cls(previous))


class AmqttLostWritesFilter(logging.Filter):
    """Drops asyncio's "socket.send() raised exception." when amqtt is the writer.

    asyncio logs that line (a warning, on stderr) at every write after the fifth to a connection
    that has gone; amqtt goes on writing to departed clients (retained messages, forwarded
    publishes), thousands of lines in a churn. Writes by anything else keep their warning.
    """

    LOST_WRITE_MESSAGE = "socket.send() raised exception."

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != self.LOST_WRITE_MESSAGE:
            return True
        directory = amqtt_directory()
        frame = inspect.currentframe()
        while frame is not None:
            if _in_directory(frame.f_code.co_filename, directory):
                return False
            frame = frame.f_back
        return True

    @classmethod
    def install(cls) -> None:
        """Filter the asyncio logger, once per process."""
        asyncio_log = logging.getLogger("asyncio")
        if not any(isinstance(f, cls) for f in asyncio_log.filters):
            asyncio_log.addFilter(cls())


def recancel_amqtt_tasks() -> None:
    """Cancel again every amqtt task that was cancelled and still runs.

    Python 3.11's `asyncio.wait_for` swallows a cancellation that lands as its inner read
    completes (fixed in 3.12); amqtt's reader loop then goes on serving its client, and whoever
    waits for that reader (`Broker.shutdown`, `asyncio.run`'s final clean-up) waits until the client
    leaves: Ctrl-C of `obsq broker` hung while components stayed connected. A second cancel ends
    the task as the first should have.
    """
    directory = amqtt_directory()
    for task in asyncio.all_tasks():
        code = getattr(task.get_coro(), "cr_code", None)
        if task.cancelling() and not task.done() and code and _in_directory(code.co_filename, directory):
            task.cancel()


async def finish_amqtt_work(clock: LoopClock, work: Awaitable[object], timeout_s: float, recancel_s: float) -> None:
    """Await `work` (amqtt's), re-delivering lost cancellations every `recancel_s`; give up after `timeout_s`.

    Whatever `work` raises is dropped: amqtt is being taken down, and its errors are its own.
    """
    task = asyncio.ensure_future(work)
    try:
        for _ in range(max(1, round(timeout_s / recancel_s))):
            with contextlib.suppress(TimeoutError):
                await wait_for(clock, asyncio.shield(task), recancel_s)
            if task.done():
                break
            recancel_amqtt_tasks()
    finally:
        task.cancel()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await task


class EmbeddedBroker:
    """amqtt in this event loop, on host:port (loopback unless told otherwise)."""

    #: how long `stop` waits for each of amqtt's shutdown steps; what is left then ends with the loop
    STOP_TIMEOUT_S = 10.0
    #: how often `stop` re-delivers the cancellations Python 3.11 loses (`recancel_amqtt_tasks`)
    RECANCEL_EVERY_S = 0.1

    def __init__(self, host: str = "127.0.0.1", port: int = 18830) -> None:
        self.host = host
        self.port = port
        self._broker: Any = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    async def start(self) -> None:
        from amqtt.broker import Broker  # imported late: only the broker process needs it

        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}", "max_connections": 1000}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
        self._broker = Broker(config)
        snapshot_subscription_iteration(self._broker)
        # both left installed after stop: amqtt's tasks still fail and write after its shutdown
        AmqttExceptionFilter.install(asyncio.get_running_loop())
        AmqttLostWritesFilter.install()
        try:
            await self._broker.start()
        except Exception as exc:
            raise OSError(f"cannot start the embedded broker on {self.host}:{self.port}: {exc}") from None

    async def stop(self) -> None:
        """Shut amqtt down and close the sessions it leaves, each within STOP_TIMEOUT_S.

        amqtt's shutdown cleans the sessions it finds, then closes its listener: clients that
        reconnect in between (every MqttBus does) get sessions nobody stops. Stopping their
        handlers here drops those connections, so no amqtt reader outlives the broker.
        """
        broker, self._broker = self._broker, None
        if broker is None:
            return
        clock = LoopClock()
        await finish_amqtt_work(clock, broker.shutdown(), self.STOP_TIMEOUT_S, self.RECANCEL_EVERY_S)
        leftovers = [handler.stop() for _, handler in list(broker.sessions.values()) if handler is not None]
        if leftovers:
            await finish_amqtt_work(clock, asyncio.gather(*leftovers), self.STOP_TIMEOUT_S, self.RECANCEL_EVERY_S)

    async def __aenter__(self) -> EmbeddedBroker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def mosquitto_path() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None
    )


def local_mosquitto_config(port: int) -> str:
    template = resources.files("obsq.csc.bus").joinpath("mosquitto-local.conf").read_text(encoding="utf-8")
    return template.replace("{port}", str(port))


class MosquittoProcess:
    """A mosquitto child process on 127.0.0.1:port, restartable on the same port."""

    def __init__(self, port: int | None = None, workdir: Path | None = None, config: str | None = None) -> None:
        """`config` replaces deploy/mosquitto/local.conf; `{port}` in it is filled in."""
        binary = mosquitto_path()
        if binary is None:
            raise FileNotFoundError("mosquitto is not installed (Debian: apt-get install mosquitto)")
        self.binary = binary
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self._tmp = None if workdir else tempfile.TemporaryDirectory(prefix="obsq-mosquitto-")
        self.workdir = workdir or Path(self._tmp.name)  # type: ignore[union-attr]
        self.config_path = self.workdir / "mosquitto.conf"
        self.log_path = self.workdir / "mosquitto.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._config = config

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> None:
        """Start mosquitto and wait until it accepts connections (blocking, for fixtures)."""
        config = self._config.replace("{port}", str(self.port)) if self._config else local_mosquitto_config(self.port)
        self.config_path.write_text(config)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen([self.binary, "-c", str(self.config_path)], stdout=log, stderr=log)
        clock = LoopClock()
        deadline = clock.monotonic() + timeout_s
        while not port_open(self.host, self.port):
            if self.process.poll() is not None:
                raise OSError(f"mosquitto exited with {self.process.returncode}: {self.log_path.read_text()[-500:]}")
            if clock.monotonic() > deadline:
                self.stop()
                raise OSError(f"mosquitto did not listen on {self.port} within {timeout_s} s")
            blocking_sleep(0.02)

    def stop(self, *, kill: bool = False) -> None:
        if self.process is None:
            return
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> MosquittoProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.asynccontextmanager
async def private_broker() -> AsyncIterator[BrokerUrl]:
    """A broker of our own on a free loopback port: Mosquitto if installed, else the embedded amqtt."""
    port = free_port()
    if mosquitto_path() is not None:
        mosquitto = MosquittoProcess(port=port)
        await asyncio.to_thread(mosquitto.start)
        try:
            yield BrokerUrl.parse(mosquitto.url)
        finally:
            await asyncio.to_thread(mosquitto.close)
    else:
        async with EmbeddedBroker("127.0.0.1", port) as broker:
            yield BrokerUrl.parse(broker.url)
