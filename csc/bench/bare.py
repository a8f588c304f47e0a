"""The floor `obsq bench bus` measures the framework against: bare aiomqtt clients doing the same thing.

Benchmark code only; it connects as MqttBus does (`client_kwargs`: TCP_NODELAY, TLS).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sys
from collections.abc import Callable

import aiomqtt

from obsq.csc.bus.mqtt import client_kwargs
from obsq.csc.bus.url import BrokerUrl
from obsq.csc.clock import LoopClock, perf_counter, wait_for


async def bare_echo_responder(url: BrokerUrl, request_topic: str, reply_topic: str, ready: Callable[[], None]) -> None:
    """Answer every message on `request_topic` with the same payload on `reply_topic`."""
    async with aiomqtt.Client(**client_kwargs(url)) as client:  # type: ignore[arg-type]
        client.pending_calls_threshold = 10_000
        await client.subscribe(request_topic, qos=1)
        ready()
        async for message in client.messages:
            await client.publish(reply_topic, message.payload, qos=1)


class BareRequester:
    """Request/reply round trips through a bare_echo_responder, with one bare aiomqtt client."""

    def __init__(self, url: BrokerUrl, request_topic: str, reply_topic: str) -> None:
        self._url = url
        self._request, self._reply = request_topic, reply_topic
        self._pending: dict[bytes, asyncio.Future[None]] = {}
        self._stack = contextlib.AsyncExitStack()
        self._client: aiomqtt.Client | None = None
        self._counter = itertools.count()

    async def __aenter__(self) -> BareRequester:
        client = aiomqtt.Client(**client_kwargs(self._url))  # type: ignore[arg-type]
        client.pending_calls_threshold = 10_000
        self._client = await self._stack.enter_async_context(client)
        await client.subscribe(self._reply, qos=1)
        reader = asyncio.create_task(self._read(client))
        self._stack.push_async_callback(self._stop, reader)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    @staticmethod
    async def _stop(task: asyncio.Task[None]) -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _read(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            future = self._pending.pop(bytes(message.payload), None)
            if future is not None:
                future.set_result(None)

    async def round_trips(self, count: int) -> list[float]:
        """Round-trip times (s) of `count` sequential requests."""
        assert self._client is not None
        times: list[float] = []
        for _ in range(count):
            key = b'{"seq":%d,"pad":"%s"}' % (next(self._counter), b"x" * 150)
            future = asyncio.get_running_loop().create_future()
            self._pending[key] = future
            t0 = perf_counter()
            await self._client.publish(self._request, key, qos=1)
            await wait_for(LoopClock(), future, 10.0)
            times.append(perf_counter() - t0)
        return times


async def bare_publish_rate(url: BrokerUrl, topic: str, count: int, qos: int, retain: bool) -> float:
    """Messages per second one bare aiomqtt client publishes (awaiting each), as counted by a subscriber."""
    payload = b'{"seq":0,"pad":"' + b"x" * 150 + b'"}'
    received = 0
    done = asyncio.Event()
    async with aiomqtt.Client(**client_kwargs(url)) as sub, aiomqtt.Client(**client_kwargs(url)) as pub:  # type: ignore[arg-type]
        pub.pending_calls_threshold = 10_000
        await sub.subscribe(topic, qos=1)

        async def reader() -> None:
            nonlocal received
            async for _ in sub.messages:
                received += 1
                if received >= count:
                    done.set()

        read_task = asyncio.create_task(reader())
        t0 = perf_counter()
        for _ in range(count):
            await pub.publish(topic, payload, qos=qos, retain=retain)
        with contextlib.suppress(TimeoutError):
            await wait_for(LoopClock(), done.wait(), 30.0)
        elapsed = perf_counter() - t0
        read_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await read_task
    return received / elapsed


def _responder_main(url: str, request: str, reply: str) -> None:
    def ready() -> None:
        print("ready", flush=True)

    asyncio.run(bare_echo_responder(BrokerUrl.parse(url), request, reply, ready))


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "responder":
        with contextlib.suppress(KeyboardInterrupt):
            _responder_main(*sys.argv[2:5])
    else:
        sys.exit("usage: python -m obsq.csc.bench.bare responder URL REQUEST_TOPIC REPLY_TOPIC")
