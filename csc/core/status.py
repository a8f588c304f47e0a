"""The status board: what `obsq status` knows about every component seen on the bus.

Pure: it is fed decoded events with the observer's current TAI time and answers rows.
A component is "gone" once its liveness event says so (its last will, or a clean exit),
"not responding" once its last heartbeat is older than `stale_after_s`, else "alive".
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from obsq.csc.core.enums import ScriptState
from obsq.csc.core.states import State, what_to_send
from obsq.csc.core.topics import ComponentId

#: Scripts are components of this name, indexed by the queue.
SCRIPT = "Script"
#: Scripts send a heartbeat every 5 s (Rubin's Script): one is not responding after two missed.
SCRIPT_STALE_AFTER_S = 12.0
#: A component whose heartbeat (1 s) is older than this is reported as not responding.
STALE_AFTER_S = 3.0
WATCHED_EVENTS = ("summaryState", "heartbeat", "errorCode", "liveness", "state", "detailedState", "deviceConnection")
#: The component that queues by itself, and its detailedState substate when it runs its rules (Rubin's RUNNING).
SCHEDULER = "Scheduler"
SCHEDULER_RUNNING = 2


@dataclass
class ComponentStatus:
    """What has been seen of one component."""

    id: ComponentId
    state: State | None = None
    #: a script's state (scripts have no summary state: SAL's Script publishes `state`)
    script_state: ScriptState | None = None
    heartbeat_tai: float | None = None
    error_code: int = 0
    error_report: str = ""
    alive: bool | None = None
    liveness_reason: str = ""
    liveness_tai: float | None = None
    #: the Scheduler's detailedState substate (RUNNING: it runs its rules)
    substate: int | None = None
    #: a hardware component's devices ("simulated", or addresses), whether they answer, and their last failure
    devices: str = ""
    device_connected: bool = False
    device_report: str = ""


@dataclass(frozen=True)
class StatusRow:
    """One line of the status table."""

    component: str
    state: str
    heartbeat_age_s: float | None
    health: str
    error: str
    #: what the state means for the site, where it matters (a Scheduler that will queue nothing)
    note: str = ""
    #: the hardware it drives ("simulated", or addresses; "" for a component without hardware)
    devices: str = ""
    #: "connected", "not connected (start it)", or "NOT CONNECTED: " and the device's failure
    connection: str = ""


@dataclass
class StatusBoard:
    """Every component seen, fed by `observe`, read by `rows`."""

    stale_after_s: float = STALE_AFTER_S
    components: dict[ComponentId, ComponentStatus] = field(default_factory=dict)

    def observe(self, component: ComponentId, event: str, data: dict[str, Any], snd_tai: float, now_tai: float) -> None:
        """Record one event of `component`, sent at `snd_tai` and received at `now_tai`."""
        status = self.components.setdefault(component, ComponentStatus(component))
        if event == "summaryState":
            status.state = State(data["summaryState"])
        elif event == "state" and component.name == SCRIPT:
            status.script_state = ScriptState(data["state"])
        elif event == "heartbeat":
            status.heartbeat_tai = max(snd_tai, status.heartbeat_tai or 0.0)
            if status.alive is False and status.liveness_tai is not None and snd_tai > status.liveness_tai:
                status.alive = True  # restarted: a heartbeat newer than the death notice
        elif event == "detailedState" and component.name == SCHEDULER:
            status.substate = int(data.get("substate", 0))
        elif event == "errorCode":
            status.error_code = int(data.get("errorCode", 0))
            status.error_report = str(data.get("errorReport", ""))
        elif event == "deviceConnection":
            status.devices = str(data["devices"])
            status.device_connected = bool(data["connected"])
            status.device_report = str(data.get("report", ""))
        elif event == "liveness":
            status.alive = bool(data["alive"])
            status.liveness_reason = str(data.get("reason", ""))
            # a last will carries the stamp of the connection; what counts is when it arrived
            status.liveness_tai = now_tai if not status.alive else snd_tai

    def health(self, status: ComponentStatus, now_tai: float) -> str:
        if status.alive is False:
            return f"gone ({status.liveness_reason})" if status.liveness_reason else "gone"
        if status.heartbeat_tai is None:
            return "no heartbeat"
        stale_after_s = SCRIPT_STALE_AFTER_S if status.id.name == SCRIPT else self.stale_after_s
        if now_tai - status.heartbeat_tai > stale_after_s:
            return "not responding"
        return "alive"

    def rows(self, now_tai: float) -> list[StatusRow]:
        rows = []
        for cid in sorted(self.components, key=lambda c: (c.name, c.index)):
            status = self.components[cid]
            age = None if status.heartbeat_tai is None else max(0.0, now_tai - status.heartbeat_tai)
            error = f"{status.error_code}: {status.error_report}" if status.error_code else ""
            state = status.state or status.script_state
            rows.append(StatusRow(str(cid), state.name if state else "?", age, self.health(status, now_tai), error,
                                  _note(status), status.devices, _connection(status)))  # fmt: skip
        return rows


def _connection(status: ComponentStatus) -> str:
    if not status.devices:
        return ""
    if status.device_connected:
        return "connected"
    if status.device_report:
        return f"NOT CONNECTED: {status.device_report}"
    return "not connected (start it)"


def _note(status: ComponentStatus) -> str:
    """A Scheduler that will queue nothing says so, and what to send."""
    if status.id.name != SCHEDULER or status.state is None or status.alive is False:
        return ""
    if status.state != State.ENABLED:
        return f"nothing will be queued: {what_to_send(status.state, State.ENABLED)}"
    if status.substate is not None and status.substate != SCHEDULER_RUNNING:
        return "stopped: nothing will be queued until resume"
    return ""


def status_json(rows: list[StatusRow]) -> str:
    """The rows as a JSON list of objects (the table's columns and the devices, heartbeat age in seconds or null)."""
    return json.dumps([asdict(r) for r in rows], indent=2)


def format_table(rows: list[StatusRow]) -> str:
    """The rows as a plain-text table."""
    header = ("COMPONENT", "STATE", "HEARTBEAT", "HEALTH", "ERROR")
    lines = [
        (
            r.component,
            r.state,
            "-" if r.heartbeat_age_s is None else f"{r.heartbeat_age_s:.1f} s ago",
            r.health,
            "; ".join(x for x in (r.error, r.note) if x),
        )
        for r in rows
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines, strict=False)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines]
    if not rows:
        out.append("(no component seen on the bus)")
    hardware = [r for r in rows if r.devices]
    if hardware:
        out += ["", "DEVICES"]
        width = max(len(r.component) for r in hardware)
        out += [f"  {r.component.ljust(width)}  {r.devices}  {r.connection}" for r in hardware]
    return "\n".join(out)
