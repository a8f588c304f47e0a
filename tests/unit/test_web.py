"""The console's state and application, in process: the memory bus, virtual time, httpx's ASGI transport."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from astropy.io import fits

from obsq.csc.app.connection import Connection
from obsq.csc.bus.memory import MemoryBroker
from obsq.csc.bus.url import BrokerUrl
from obsq.csc.clock import ManualClock, tai_iso
from obsq.csc.core.topics import ComponentId
from obsq.csc.testcsc import TestCsc
from obsq.csc.web.console import Console, Session
from obsq.csc.web.library import DataFolder
from obsq.csc.web.server import COOKIE, MAX_BODY_BYTES, build_app
from obsq.csc.web.state import ConsoleState

T0 = 1_800_000_000.0
QUEUE_ITEMS = [
    {"index": 200002, "path": "sleep.py", "state": "CONFIGURED", "process": "CONFIGURED", "checkpoint": "",
     "done": 0, "total": 0, "block": "", "reason": "", "requeuedFrom": 0, "duration": 10, "area": "queue"},
    {"index": 200001, "path": "auxtel/take_image_latiss.py", "state": "RUNNING", "process": "RUNNING",
     "checkpoint": "exposure 2 of 5: a checkpoint text well over forty characters long", "done": 1, "total": 5,
     "block": "BLOCK-295", "reason": "", "requeuedFrom": 0, "duration": 50, "area": "current"},
    {"index": 100001, "path": "set_summary_state.py", "state": "FAILED", "process": "DONE", "checkpoint": "",
     "done": 0, "total": 0, "block": "BLOCK-309", "reason": "ATWhiteLight did not answer", "requeuedFrom": 0,
     "duration": 1, "area": "history"},
]  # fmt: skip


def queue_event(items: list[dict[str, Any]], *, running: bool = True) -> dict[str, Any]:
    return {"enabled": True, "running": running, "currentSalIndex": 200001, "length": 1, "salIndices": [200002],
            "pastLength": 1, "pastSalIndices": [100001], "token": 1, "items": json.dumps(items)}  # fmt: skip


def test_the_state_draws_components_queue_images_and_scheduler(tmp_path: Path) -> None:
    state = ConsoleState()
    dome, queue, camera = ComponentId("ATDome"), ComponentId("ScriptQueue", 2), ComponentId("ATCamera")
    state.observe(dome, "summaryState", {"summaryState": 2}, T0, T0)
    state.observe(dome, "heartbeat", {}, T0 + 1, T0 + 1)
    state.observe(dome, "logMessage", {"level": 40, "message": "motor stalled"}, T0 + 1, T0 + 1)
    state.observe(queue, "queue", queue_event(QUEUE_ITEMS), T0, T0)
    state.observe(ComponentId("ATSpectrograph"), "reportedFilterPosition", {"slot": 2, "name": "SDSSr_65mm"}, T0, T0)
    state.observe(camera, "startIntegration", {"imageName": "AT_O_1", "imageType": "FLAT", "exposureTime": 6.0}, T0, T0)
    state.observe(camera, "largeFileObjectAvailable", {"url": f"file://{tmp_path}/AT_O_1.fits", "id": "AT_O_1"}, T0, T0)
    state.observe(ComponentId("Scheduler", 2), "decision", {"rule": "weekly", "action": "skip", "reason": "paused"},
                  T0, T0)  # fmt: skip
    state.observe(ComponentId("Script", 200001), "state", {"state": 3}, T0, T0)
    snapshot = state.snapshot(T0 + 2.5)
    rows = {c["id"]: c for c in snapshot["components"]}
    assert set(rows) == {"ATDome", "ScriptQueue:2", "ATCamera", "ATSpectrograph", "Scheduler:2"}  # not scripts
    assert rows["ATDome"]["state"] == "ENABLED"
    assert rows["ATDome"]["heartbeatAge"] == pytest.approx(1.5)
    assert rows["ATDome"]["logs"][0]["message"] == "motor stalled"
    assert snapshot["queue"]["running_item"]["checkpoint"].endswith("forty characters long")
    assert [i["index"] for i in snapshot["queue"]["queued"]] == [200002]
    assert snapshot["queue"]["history"][0]["reason"] == "ATWhiteLight did not answer"
    assert snapshot["images"] == [{"number": 1, "name": "AT_O_1", "about": "FLAT 6 s SDSSr_65mm~?",
                                   "time": "2027-01-15T07:59:23.000Z"}]  # fmt: skip
    assert state.image(1) is not None
    assert state.image(1).path == f"{tmp_path}/AT_O_1.fits"
    assert snapshot["scheduler"]["decisions"][0]["action"] == "skip"
    assert [e["event"] for e in state.recent_events(dome)] == ["logMessage", "summaryState"]  # no heartbeats
    json.dumps(snapshot)  # all of it goes to the page as JSON


def test_the_state_refuses_what_lacks_its_fields_and_keeps_the_rest() -> None:
    state = ConsoleState()
    queue = ComponentId("ScriptQueue", 2)
    state.observe(queue, "queue", queue_event(QUEUE_ITEMS), T0, T0)
    with pytest.raises(KeyError):
        state.observe(queue, "queue", {"items": "[]"}, T0, T0)  # a careless publisher: no running, no current
    with pytest.raises(KeyError):
        state.observe(ComponentId("ATCamera"), "largeFileObjectAvailable", {"id": "x"}, T0, T0)
    assert state.snapshot(T0)["queue"]["running_item"]["index"] == 200001


@pytest.fixture
async def rig(root: str, tmp_path: Path) -> AsyncIterator[tuple[Console, httpx.AsyncClient, MemoryBroker]]:
    broker = MemoryBroker()
    clock = ManualClock()
    console = Console(Connection(), BrokerUrl.parse("mqtt://127.0.0.1:1"), root, clock=clock)
    reading = broker.client("web")
    await reading.start()
    await console.watch(reading)
    app = build_app(console, DataFolder(tmp_path / "data"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console") as client:
        yield console, client, broker
    await console.close()
    await reading.close()


async def log_in(console: Console, broker: MemoryBroker, user: str, client: httpx.AsyncClient) -> None:
    """A session as `/api/login` makes one, on the memory bus (no broker to ask)."""
    bus = broker.client(f"web-{user}")
    await bus.start()
    console.sessions[user] = Session(user, bus, console.clock, console.root)
    client.cookies.set(COOKIE, user)


async def test_the_page_and_its_forms_are_served(rig: tuple[Console, httpx.AsyncClient, MemoryBroker]) -> None:
    _, client, _ = rig
    page = await client.get("/")
    assert page.status_code == 200
    assert "obsq console" in page.text
    assert (await client.get("/static/console.js")).status_code == 200
    me = (await client.get("/api/me")).json()
    assert me["user"] is None
    assert me["role"] == "observer"
    forms = (await client.get("/api/forms")).json()
    blocks = {b["id"]: b for b in forms["blocks"]}
    assert blocks["BLOCK-309"]["schema"] is None
    assert blocks["BLOCK-9001"]["schema"]["required"] == ["filter", "exposure"]
    scripts = {s["path"]: s for s in forms["scripts"]}
    assert scripts["sleep.py"]["schema"]["properties"]["sleep_for"]["type"] == "number"
    assert forms["locations"]["before"] == 3


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"block": "BLOCK-9001", "fields": {"filter": "SDSSr", "exposure": "-1"}}, 422,
         "block BLOCK-9001 configuration: field 'exposure': -1 is less than or equal to the minimum of 0"
         " (rule: exclusiveMinimum)"),
        ({"block": "BLOCK-9001", "fields": {"filter": "SDSSr"}}, 422,
         "block BLOCK-9001 configuration: field 'exposure' is required (rule: required)"),
        ({"block": "BLOCK-9001", "fields": {"filter": "SDSSr", "exposure": "2", "colour": "red"}}, 422,
         "field 'colour' is not allowed (rule: additionalProperties)"),
        ({"block": "BLOCK-999"}, 422, "unknown block 'BLOCK-999'"),
        ({"block": "BLOCK-309", "fields": {"x": 3}}, 422, "field 'fields': an object of text values is required"),
        ({"block": "BLOCK-309", "failureStrategy": "retry"}, 422, "field 'failureStrategy': one of none, "),
        ({"block": ["BLOCK-309"]}, 422, "field 'block': a string is required"),
        ({"block": "BLOCK-9001", "fields": {"filter": "SDSSr", "exposure": "[1,"}}, 422,
         "block BLOCK-9001 field 'exposure': '[1,' cannot be read as a value"),
    ],
)  # fmt: skip
async def test_a_bad_block_form_is_named_and_nothing_is_sent(
    rig: tuple[Console, httpx.AsyncClient, MemoryBroker], body: dict[str, Any], status: int, message: str
) -> None:
    console, client, broker = rig
    await log_in(console, broker, "operator", client)
    sent: list[str] = []
    watcher = broker.client("watcher")
    await watcher.start()
    await watcher.subscribe(f"{console.root}/+/+/cmd/#", lambda m: sent.append(m.topic))
    answer = await client.post("/api/queue/add-block", json=body)
    assert answer.status_code == status
    assert message in answer.json()["error"]
    assert sent == []
    await watcher.close()


async def test_a_bad_script_form_is_named_as_the_cli_names_it(
    rig: tuple[Console, httpx.AsyncClient, MemoryBroker],
) -> None:
    console, client, broker = rig
    await log_in(console, broker, "operator", client)
    answer = await client.post("/api/queue/add", json={"path": "sleep.py", "fields": {"sleep_for": "a while"}})
    assert answer.status_code == 422
    assert answer.json()["error"].startswith("script sleep.py: Sleep configuration: field 'sleep_for'")
    answer = await client.post("/api/queue/add", json={"path": "sleep.py", "yaml": "- a list"})
    assert answer.json()["error"] == "script sleep.py: configuration must be a mapping"
    answer = await client.post("/api/queue/add", json={"path": "nowhere.py"})
    assert answer.status_code == 422
    assert "nowhere.py" in answer.json()["error"]
    answer = await client.post("/api/queue/add", json={"path": "sleep.py", "location": "middle"})
    assert "--location 'middle': use first, last, before:INDEX or after:INDEX" in answer.json()["error"]


async def test_hostile_requests_get_a_clear_refusal(rig: tuple[Console, httpx.AsyncClient, MemoryBroker]) -> None:
    _, client, _ = rig
    cases = [
        (client.post("/api/command", content=b"pause", headers={"content-type": "text/plain"}), 415, "send JSON"),
        (client.post("/api/command", content=b"{", headers={"content-type": "application/json"}), 400, "not JSON"),
        (client.post("/api/command", json=[1, 2]), 400, "must be a JSON object"),
        (
            client.post(
                "/api/command", content=b"x" * (MAX_BODY_BYTES + 1), headers={"content-type": "application/json"}
            ),
            413,
            "request body over",
        ),
        (client.post("/api/command", json={"component": "ScriptQueue:2", "command": "pause"}), 403, "log in"),
        (client.post("/api/login", json={"user": "a b/c"}), 401, "user name: 1 to 64 letters"),
        (client.get("/api/images/7.png"), 404, "no such image"),
        (client.get("/api/events/Not a component!"), 404, ""),
        (client.get("/api/masters/3.png"), 404, "no calibration repository yet"),
        (client.get("/api/ptc.png"), 404, "no PTC"),
        (client.get("/report"), 404, "no weekly report"),
    ]
    for request, status, message in cases:
        answer = await request
        assert answer.status_code == status, answer.text
        assert message in answer.json()["error"]


async def test_an_observer_session_sends_nothing(rig: tuple[Console, httpx.AsyncClient, MemoryBroker]) -> None:
    console, client, broker = rig
    await log_in(console, broker, "observer", client)
    assert (await client.get("/api/me")).json()["role"] == "observer"
    answer = await client.post("/api/command", json={"component": "Test:1", "command": "start"})
    assert answer.status_code == 403
    assert answer.json()["error"] == "observer observes: its session sends no commands"
    answer = await client.post("/api/queue/add-block", json={"block": "BLOCK-309"})
    assert answer.status_code == 403


async def test_an_operator_commands_as_its_user_and_sees_every_ack(
    rig: tuple[Console, httpx.AsyncClient, MemoryBroker], tmp_path: Path
) -> None:
    console, client, broker = rig
    bus = broker.client("csc")
    csc = TestCsc(index=1, bus=bus, clock=console.clock, root=console.root)
    await bus.start()
    identities: list[str] = []
    async with csc:
        await log_in(console, broker, "alice", client)
        await bus.subscribe(f"{console.root}/Test/1/cmd/#", lambda m: identities.append(
            json.loads(m.payload)["private_identity"]))  # fmt: skip
        answer = await client.post("/api/command", json={"component": "Test:1", "command": "start"})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["ok"]
        assert body["acks"][-1]["ack"] == "COMPLETE"
        assert identities[0].startswith("alice@")
        answer = await client.post("/api/command", json={"component": "Test:1", "command": "enable", "data": {"x": 1}})
        assert answer.status_code == 422
        assert "field 'x'" in answer.json()["error"]
        answer = await client.post("/api/command", json={"component": "Test:1", "command": "fly"})
        assert answer.status_code == 422
        answer = await client.post("/api/command", json={"component": "Nope:1", "command": "start"})
        assert answer.status_code == 422
        assert answer.json()["error"].startswith("unknown component 'Nope'; known: ")  # as `obsq cmd` says it
    await bus.close()


def test_previews_come_only_from_the_data_folder_and_decode(tmp_path: Path) -> None:
    data = DataFolder(tmp_path / "data")
    (tmp_path / "data" / "raw").mkdir(parents=True)
    frame = tmp_path / "data" / "raw" / "other_camera.fits"
    fits.PrimaryHDU(np.random.default_rng(1).normal(1000, 10, (64, 80)).astype(np.uint16)).writeto(frame)
    png = data.raw_preview(frame)
    assert png.startswith(b"\x89PNG")
    outside = tmp_path / "elsewhere.fits"
    fits.PrimaryHDU(np.zeros((4, 4))).writeto(outside)
    with pytest.raises(Exception, match="outside the data folder"):
        data.raw_preview(outside)
    with pytest.raises(Exception, match="outside the data folder"):
        data.raw_preview(tmp_path / "data" / ".." / "elsewhere.fits")
    cube = tmp_path / "data" / "raw" / "cube.fits"
    fits.PrimaryHDU(np.ones((3, 16, 20), np.float32)).writeto(cube)
    assert data.raw_preview(cube).startswith(b"\x89PNG")  # its first plane
    table = tmp_path / "data" / "raw" / "table.fits"
    columns = fits.BinTableHDU.from_columns([fits.Column("x", "E", array=[1.0])])
    fits.HDUList([fits.PrimaryHDU(), columns]).writeto(table)
    with pytest.raises(Exception, match=r"table\.fits: cannot be shown \(table\.fits: no image data\)"):
        data.raw_preview(table)
    groups = tmp_path / "data" / "raw" / "groups.fits"
    fits.GroupsHDU(fits.GroupData(np.ones((2, 1, 4, 4), np.float32), parnames=["UU"],
                                  pardata=[np.zeros(2, np.float32)])).writeto(groups)  # fmt: skip
    with pytest.raises(Exception, match="no image data"):
        data.raw_preview(groups)
    (tmp_path / "data" / "raw" / "not.fits").write_text("not a FITS file")
    with pytest.raises(Exception, match=r"not\.fits: cannot be shown"):
        data.raw_preview(tmp_path / "data" / "raw" / "not.fits")


def test_the_devices_and_the_observatory_clock_as_an_operator_reads_them() -> None:
    """Dome against where it was sent, doors, mount, lamp with its warm-up left on the simulated clock, wheels,
    camera with its exposure's time left; the clock runs at the components' speed from their last message."""
    state = ConsoleState()
    dome, mount, lamp = ComponentId("ATDome"), ComponentId("ATMCS"), ComponentId("ATWhiteLight")
    camera, wheels = ComponentId("ATCamera"), ComponentId("ATSpectrograph")
    epoch = T0 - 10.0  # the components' clock ran 600x from ten wall seconds before T0
    sim = epoch + 10.0 * 600  # their clock at T0; envelopes are stamped on the wall clock
    state.observe(dome, "simulationMode", {"mode": 1, "clockSpeed": 600.0, "clockEpoch": epoch}, T0, T0)
    state.observe(dome, "azimuthPosition", {"azimuth": 120.04, "homed": True}, sim, T0)
    state.observe(dome, "azimuthCommandedState", {"azimuth": 3.0, "commandedState": 2}, sim, T0)
    state.observe(dome, "mainDoorState", {"state": 1}, sim, T0)
    state.observe(dome, "dropoutDoorState", {"state": 4}, sim, T0)
    state.observe(mount, "mountPosition", {"azimuth": 188.7, "elevation": 39.0}, sim, T0)
    state.observe(mount, "atMountState", {"state": 9}, sim, T0)
    lit = {"basicState": 4, "controllerError": 0, "controllerState": 1, "lightDetected": True, "setPower": 910.0,
           "cooldownEndTime": 0.0, "warmupEndTime": sim + 900.0}  # fmt: skip
    state.observe(lamp, "lampState", lit, sim, T0)
    chiller = {"setTemperature": 20.0, "supplyTemperature": 21.37, "returnTemperature": 22, "ambientTemperature": 18}
    state.observe_telemetry(lamp, "chillerTemperatures", chiller, sim)
    state.observe(wheels, "reportedFilterPosition", {"slot": 2, "name": "SDSSr_65mm"}, sim, T0)
    state.observe(wheels, "reportedDisperserPosition", {"slot": 1, "name": "empty_1"}, sim, T0)
    state.observe(camera, "startIntegration", {"imageName": "AT_O_20261204_000007", "imageIndex": 1,
                  "imagesInSequence": 2, "exposureTime": 30.0, "imageType": "FLAT", "groupId": "g",
                  "timestampAcquisitionStart": sim + 295.0}, T0, T0)  # fmt: skip
    snap = state.snapshot(T0 + 0.5)  # half a real second: 300 s of the observatory's clock
    assert snap["observatory"] == {"time": tai_iso(sim + 300.0), "simulated": True, "speed": 600.0, "heard": True}
    devices = snap["devices"]
    assert devices["ATDome"] == ["azimuth 120.0° (sent to 3.0°)", "main door CLOSED, dropout door OPENING"]
    assert devices["ATMCS"] == ["az 188.70° el 39.00°, tracking"]
    assert devices["ATWhiteLight"] == ["lamp WARMUP 910 W, warm-up 10:00 left", "chiller 21.4 °C (set 20.0 °C)"]
    assert devices["ATSpectrograph"] == ["filter SDSSr_65mm, grating empty_1"]
    assert devices["ATCamera"] == ["exposing AT_O_20261204_000007: FLAT 30 s (1 of 2), 0:25 left"]
    assert [t["label"] for t in snap["trends"]] == ["chiller supply (°C)"]
    later = state.snapshot(T0 + 1.0)["devices"]
    assert later["ATWhiteLight"][0] == "lamp WARMUP 910 W, warm-up 5:00 left"  # the countdown runs at 600x
    assert later["ATCamera"] == ["exposing AT_O_20261204_000007: FLAT 30 s (1 of 2)"]  # over; no readout heard
    state.observe(camera, "imageStored", {"imageName": "AT_O_20261204_000007"}, sim + 40, T0 + 1.0)
    assert state.snapshot(T0 + 1.0)["devices"]["ATCamera"] == ["idle; last image AT_O_20261204_000007 (FLAT, 30 s)"]


def test_a_device_event_without_its_fields_is_said_and_the_page_goes_on() -> None:
    state = ConsoleState()
    state.observe(ComponentId("ATDome"), "azimuthPosition", {"homed": True}, T0, T0)  # no azimuth
    state.observe(ComponentId("ATMCS"), "mountPosition", {"azimuth": 1.0, "elevation": 2.0}, T0, T0)
    devices = state.snapshot(T0)["devices"]
    assert devices["ATDome"][0].startswith("(an event could not be read: KeyError")
    assert devices["ATMCS"] == ["az 1.00° el 2.00°"]


def test_the_log_panel_has_the_scripts_lines_too() -> None:
    state = ConsoleState()
    state.observe(ComponentId("ATDome"), "logMessage", {"level": 20, "message": "homing"}, T0, T0)
    state.observe(ComponentId("Script", 200004), "logMessage", {"level": 40, "message": "ATDome is STANDBY"}, T0 + 1,
                  T0 + 1)  # fmt: skip
    logs = state.snapshot(T0 + 2)["logs"]
    assert [(line["id"], line["message"]) for line in logs] == [("Script:200004", "ATDome is STANDBY"),
                                                                ("ATDome", "homing")]  # fmt: skip
