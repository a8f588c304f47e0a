"""What the operator's page shows, kept from the bus's events — pure: fed decoded events, read as snapshots.

`ConsoleState.observe` takes one event (component, name, data, when it was sent, now) and
`snapshot(now)` answers everything the page draws as one JSON-ready dict: every component's
status row (the same StatusBoard as `obsq status`), its latest log lines and recent events, the
ScriptQueue's items, the images announced by the camera, and the Scheduler's schedule and
decisions. The server sends a snapshot whenever `version` moves, and once a second for the
heartbeat ages.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlparse

from obsq.csc.clock import tai_iso
from obsq.csc.core.status import SCRIPT, StatusBoard
from obsq.csc.core.topics import ComponentId
from obsq.csc.web.devices import DeviceView

#: Log lines kept per component.
LOG_LINES = 30
#: Lines in the page's log panel (all components and scripts, newest first).
LOG_PANEL_LINES = 60
#: Recent events kept per component (its "events" link).
RECENT_EVENTS = 60
#: Images kept (the newest first).
IMAGES = 24
#: Scheduler decisions kept.
DECISIONS = 30
#: A field's text in an event listing is cut at this many characters.
FIELD_CHARS = 400
#: Events that change every second or carry nothing an operator reads in a list.
QUIET_EVENTS = frozenset({"heartbeat"})


@dataclass(frozen=True)
class ImageSeen:
    """One raw file the camera announced."""

    number: int
    name: str
    path: str
    tai: float
    #: what it is, as the camera and spectrograph said when it began: "FLAT 6 s SDSSr_65mm~empty_1"
    about: str = ""


@dataclass
class ConsoleState:
    """Everything the page shows, fed by `observe`."""

    board: StatusBoard = field(default_factory=StatusBoard)
    logs: dict[ComponentId, deque[dict[str, Any]]] = field(default_factory=dict)
    events: dict[ComponentId, deque[dict[str, Any]]] = field(default_factory=dict)
    queue: dict[str, Any] = field(default_factory=dict)
    images: deque[ImageSeen] = field(default_factory=lambda: deque(maxlen=IMAGES))
    schedule: dict[str, Any] = field(default_factory=dict)
    decisions: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=DECISIONS))
    runs: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=DECISIONS))
    devices: DeviceView = field(default_factory=DeviceView)
    #: each component's simulationMode: (mode, clock speed, clock epoch)
    modes: dict[str, tuple[int, float, float]] = field(default_factory=dict)
    version: int = 0
    _image_count: int = 0
    _begun: dict[str, str] = field(default_factory=dict)

    def observe_telemetry(self, component: ComponentId, name: str, data: dict[str, Any], snd_tai: float) -> None:
        """A telemetry sample: the trends the page plots (other telemetry is not kept)."""
        if self.devices.observe(component.name, name, data, snd_tai):
            self.version += 1

    def observatory_time(self, now_tai: float) -> dict[str, Any]:
        """The observatory's clock at the wall clock's `now_tai`: the components' (simulated or real) and its speed.

        Envelopes are stamped on the wall clock; a component's own clock (the times in its payloads: a
        warm-up's end, a decision) is its simulationMode's epoch + (wall - epoch) x speed.
        """
        if not self.modes:
            return {"time": tai_iso(now_tai), "tai": now_tai, "simulated": False, "speed": 1.0, "heard": False}
        _, speed, epoch = max(self.modes.values(), key=lambda m: m[1])
        tai = now_tai if speed == 1.0 else epoch + (now_tai - epoch) * speed
        simulated = any(m for m, _, _ in self.modes.values())
        return {"time": tai_iso(tai), "tai": tai, "simulated": simulated, "speed": speed, "heard": True}

    def observe(self, component: ComponentId, name: str, data: dict[str, Any], snd_tai: float, now_tai: float) -> None:
        """Record one event; KeyError/ValueError/TypeError for a payload that lacks what it should have."""
        self.board.observe(component, name, data, snd_tai, now_tai)
        if name in QUIET_EVENTS:
            return
        if name == "simulationMode":
            self.modes[str(component)] = (int(data["mode"]), float(data.get("clockSpeed", 1.0)),
                                          float(data.get("clockEpoch", 0.0)))  # fmt: skip
        self.devices.observe(component.name, name, data, snd_tai)
        self.version += 1
        recent = self.events.setdefault(component, deque(maxlen=RECENT_EVENTS))
        when = self.observatory_time(snd_tai)["time"]  # on the observatory's clock, as everything on the page
        recent.appendleft({"time": when, "event": name, "data": _shorten(data)})
        if name == "logMessage":
            lines = self.logs.setdefault(component, deque(maxlen=LOG_LINES))
            lines.appendleft({"time": when, "level": int(data.get("level", 20)),
                              "message": str(data.get("message", ""))[:FIELD_CHARS]})  # fmt: skip
        elif name == "queue" and component.name == "ScriptQueue":
            self.queue = _queue(data)
        elif component.name == "ATCamera":
            self._camera(name, data, snd_tai)
        elif component.name == "Scheduler":
            self._scheduler(name, data)

    def _camera(self, name: str, data: dict[str, Any], snd_tai: float) -> None:
        """An image announced (with what it is, from when it began), or an exposure beginning."""
        if name == "largeFileObjectAvailable":
            url = urlparse(str(data["url"]))
            if url.scheme == "file":
                self._image_count += 1
                name_ = str(data.get("id") or url.path.rsplit("/", 1)[-1])
                about = self._begun.pop(name_, "")
                self.images.appendleft(ImageSeen(self._image_count, name_, unquote(url.path), snd_tai, about))
        elif name == "startIntegration":
            filter_ = self.devices.latest.get(("ATSpectrograph", "reportedFilterPosition"), {}).get("name", "?")
            grating = self.devices.latest.get(("ATSpectrograph", "reportedDisperserPosition"), {}).get("name", "?")
            self._begun[str(data["imageName"])] = (f"{data.get('imageType', '')} {float(data['exposureTime']):g} s "
                                                   f"{filter_}~{grating}")  # fmt: skip
            while len(self._begun) > IMAGES:
                self._begun.pop(next(iter(self._begun)))

    def _scheduler(self, name: str, data: dict[str, Any]) -> None:
        if name == "schedule":
            self.schedule = {k: str(data.get(k, "")) for k in ("source", "site", "timezone", "rules")}
        elif name == "decision":
            self.decisions.appendleft({k: str(data.get(k, "")) for k in
                                       ("rule", "occurrence", "time", "action", "blocks", "reason")})  # fmt: skip
        elif name == "run":
            run = {k: str(data.get(k, "")) for k in ("rule", "occurrence", "blocks", "outcome")}
            for old in [r for r in self.runs if (r["rule"], r["occurrence"]) == (run["rule"], run["occurrence"])]:
                self.runs.remove(old)  # one row a run: its latest outcome (running, failing, how it ended)
            self.runs.appendleft(run)

    def image(self, number: int) -> ImageSeen | None:
        return next((image for image in self.images if image.number == number), None)

    def recent_events(self, component: ComponentId) -> list[dict[str, Any]]:
        return list(self.events.get(component, ()))

    def snapshot(self, now_tai: float) -> dict[str, Any]:
        """The page's data now (heartbeat ages are as of `now_tai`)."""
        components = []
        scheduler = None
        for row in self.board.rows(now_tai):
            if row.component.partition(":")[0] == "Scheduler":
                scheduler = row
            cid = ComponentId.parse(row.component)
            if cid.name == SCRIPT:
                continue  # the queue shows its scripts
            components.append({
                "id": row.component, "state": row.state, "heartbeatAge": row.heartbeat_age_s, "health": row.health,
                "error": row.error, "note": row.note, "logs": list(self.logs.get(cid, ()))[:8],
                "devices": row.devices, "connection": row.connection,
            })  # fmt: skip
        clock = self.observatory_time(now_tai)
        return {
            "version": self.version,
            "time": tai_iso(now_tai),
            "observatory": {k: v for k, v in clock.items() if k in ("time", "simulated", "speed", "heard")},
            "devices": self.devices.lines(clock["tai"]),
            "trends": self.devices.trend_rows(),
            "components": components,
            "queue": self.queue,
            # every component's log lines and the scripts' (the queue's scripts say why they do what they do)
            "logs": sorted(
                ({**line, "id": str(cid)} for cid, lines in self.logs.items() for line in lines),
                key=lambda line: line["time"],
                reverse=True,
            )[:LOG_PANEL_LINES],
            "images": [
                {"number": i.number, "name": i.name, "about": i.about, "time": self.observatory_time(i.tai)["time"]}
                for i in self.images
            ],
            "scheduler": {
                "schedule": self.schedule,
                "decisions": list(self.decisions),
                "runs": list(self.runs),
                "state": scheduler.state if scheduler else "",
                "note": scheduler.note if scheduler else "",
            }
            if self.schedule or self.decisions or scheduler
            else None,
        }


def _queue(data: dict[str, Any]) -> dict[str, Any]:
    items = json.loads(data.get("items") or "[]")
    return {
        "enabled": bool(data.get("enabled")),
        "running": bool(data["running"]),
        "current": int(data["currentSalIndex"]),
        "queued": [i for i in items if i["area"] == "queue"],
        "running_item": next((i for i in items if i["area"] == "current"), None),
        "history": [i for i in items if i["area"] == "history"],
    }


def _shorten(data: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, str) and len(value) > FIELD_CHARS:
            out[key] = value[:FIELD_CHARS] + "…"
        elif isinstance(value, list) and len(value) > 20:
            out[key] = [*value[:20], "…"]
        else:
            out[key] = value
    return out
