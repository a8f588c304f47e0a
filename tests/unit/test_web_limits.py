"""The page's server under hostile input (issue 23): every route walked, no 5xx; logins limited; bodies bounded."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from obsq.csc.app.connection import Connection
from obsq.csc.bus.memory import MemoryBroker
from obsq.csc.bus.url import BrokerUrl
from obsq.csc.clock import ManualClock
from obsq.csc.web.console import Console, LoginError
from obsq.csc.web.library import DataFolder
from obsq.csc.web.limits import FAILURES_ALLOWED, WINDOW_S, LoginLimiter
from obsq.csc.web.server import COOKIE, MAX_BODY_BYTES, build_app


def test_failed_logins_are_limited_per_address_and_per_user() -> None:
    limiter = LoginLimiter(allowed=3, window_s=60.0)
    for t in range(3):
        assert limiter.retry_after("10.0.0.1", f"user{t}", float(t)) == 0
        limiter.failed("10.0.0.1", f"user{t}", float(t))
    assert limiter.retry_after("10.0.0.1", "someone", 3.0) == pytest.approx(57.0)  # the address, whatever the user
    assert limiter.retry_after("10.0.0.2", "user0", 3.0) == 0  # another address, another user
    for t, address in enumerate(("10.0.0.3", "10.0.0.4", "10.0.0.5")):
        limiter.failed(address, "root", 10.0 + t)
    assert limiter.retry_after("10.0.0.9", "root", 13.0) == pytest.approx(57.0)  # the user, from anywhere
    assert limiter.retry_after("10.0.0.1", "someone", 60.5) == 0  # the window has passed
    small = LoginLimiter(allowed=1, window_s=1.0, max_keys=4)
    for n in range(100):
        small.failed(f"10.1.0.{n}", f"u{n}", 0.0)
    assert len(small._failures) == 4  # a flood of addresses cannot grow it


@pytest.fixture
async def client(root: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    broker = MemoryBroker()
    console = Console(Connection(), BrokerUrl.parse("mqtt://127.0.0.1:1"), root, clock=ManualClock())

    async def refused(user: str, password: str) -> str:  # the broker's answer to a wrong password, without a broker
        raise LoginError(f"the broker refused user {user!r}: not authorised")

    console.login = refused  # type: ignore[method-assign]
    reading = broker.client("web")
    await reading.start()
    await console.watch(reading)
    app = build_app(console, DataFolder(tmp_path / "data"))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://console") as http:
        yield http
    await console.close()
    await reading.close()


async def test_wrong_logins_meet_429_with_retry_after(client: httpx.AsyncClient) -> None:
    statuses = []
    for n in range(60):
        answer = await client.post("/api/login", json={"user": "operator", "password": f"guess{n}"})
        statuses.append(answer.status_code)
        if answer.status_code == 429:
            assert 1 <= int(answer.headers["Retry-After"]) <= WINDOW_S
            assert "too many failed logins" in answer.json()["error"]
    assert statuses[:FAILURES_ALLOWED] == [401] * FAILURES_ALLOWED  # the broker refused each
    assert statuses.index(429) == FAILURES_ALLOWED  # the 11th of 60


JSON = {"content-type": "application/json"}
#: Bodies a careless or hostile client sends; each route that takes a body gets every one.
BODIES: list[tuple[bytes, dict[str, str]]] = [
    (b"", JSON),
    (b"{not json", JSON),
    (b"\xff\xfe\x00garbage", JSON),
    (b"[" * 200_000, JSON),
    (b"{" * 100_000, JSON),
    (b"[1, 2]", JSON),
    (b'"text"', JSON),
    (b"null", JSON),
    (b'{"user": 7, "password": [], "block": {}, "path": null, "fields": [1], "data": "x", "standard": "yes"}', JSON),
    (b'{"block": "BLOCK-295", "fields": {"a": "[[[["}, "failureStrategy": 5}', JSON),
    (b'{"path": "../../etc/passwd", "yaml": "!!python/object/apply:os.system [\\"true\\"]"}', JSON),
    (b'{"component": "' + b"A" * 10_000 + b'", "command": "x", "data": {}}', JSON),
    (b'{"component": "Test:99999999999999999999999", "command": "start", "data": {"n": 1e999}}', JSON),
    (b'{"user": "operator", "password": "x"}', {"content-type": "text/plain"}),
    (b'{"user": "operator"}', {"content-type": "application/x-www-form-urlencoded"}),
    (b"x" * (MAX_BODY_BYTES + 1), JSON),
    (b"{}", {"content-type": "application/json", "content-length": "999999999999"}),
]
POSTS = ["/api/login", "/api/logout", "/api/queue/add-block", "/api/queue/add", "/api/command"]
GETS = [
    "/", "/api/me", "/api/forms", "/api/masters", "/api/ptc.png", "/report",
    "/api/events/ATDome", "/api/events/%00", "/api/events/" + "A" * 5000, "/api/events/Test:99999999999999999999",
    "/api/events/..%2F..%2Fetc", "/api/images/1.png", "/api/images/99999999999999999999.png", "/api/images/-1.png",
    "/api/masters/1.png", "/api/masters/99999999999999999999.png", "/api/masters/0.png", "/api/masters/x.png",
    "/static/../../../../etc/passwd", "/static/%2e%2e/%2e%2e/etc/passwd", "/nothing/here", "/api/login",
]  # fmt: skip


async def test_every_route_answers_hostile_input_without_a_server_error(client: httpx.AsyncClient) -> None:
    seen: dict[int, int] = {}
    for route, (body, headers) in itertools.product(POSTS, BODIES):
        for cookie in ("", "x" * 4000, "a;b=c,d"):
            client.cookies.clear()
            if cookie:
                client.cookies.set(COOKIE, cookie)
            answer = await client.post(route, content=body, headers=headers)
            seen[answer.status_code] = seen.get(answer.status_code, 0) + 1
            assert answer.status_code < 500, (route, body[:80], answer.status_code, answer.text[:300])
            if answer.status_code >= 400 and answer.headers.get("content-type", "").startswith("application/json"):
                assert answer.json()["error"]  # named, not empty
    for route in GETS:
        answer = await client.get(route)
        assert answer.status_code < 500, (route, answer.status_code, answer.text[:300])
        answer = await client.put(route, content=b"{}", headers=JSON)  # a method no route takes
        assert answer.status_code < 500, (route, answer.status_code)
    assert (await client.get("/api/me")).status_code == 200  # it still answers
    assert set(seen) <= {200, 400, 401, 403, 404, 413, 415, 422, 429}, seen
