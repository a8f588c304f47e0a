"""Bringing up the simulated observatory: every component its own supervised process, ready on the bus.

The one bring-up used by `obsq up`, `obsq weekly`, `obsq script run --sim`, the system tests
and the benchmarks. The members are the auxiliary telescope (ATWhiteLight, ATSpectrograph,
ATDome, ATMCS, ATCamera), the reduction service OCPS:1 and ScriptQueue:2; all share one
clock epoch and speed, one data folder and one topic root.

Readiness is what the bus shows: each member's heartbeat and the summary state it was asked
to start in, published by the process we started (its `private_origin` is the child's pid, so
a retained event of an earlier run never counts). There is no fixed start-up limit: on a busy
machine importing and configuring simply take longer. A member whose process exits while
starting, or that stays silent — no heartbeat and no CPU time used — for `silent_limit_s`, is
named with the last lines of its log and the bring-up fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from obsq.csc.bus.base import Bus, Message
from obsq.csc.bus.credentials import SCRIPT_CREDENTIALS_ENV, child_environment
from obsq.csc.bus.url import BrokerUrl
from obsq.csc.clock import Clock, wall_tai
from obsq.csc.core.codec import Envelope
from obsq.csc.core.errors import ObsqError
from obsq.csc.core.principals import PEOPLE, SCRIPTS_PRINCIPAL, principal_user
from obsq.csc.core.states import State
from obsq.csc.core.topics import ComponentId, Topic
from obsq.csc.injections import injections_for
from obsq.csc.procstat import process_cpu_s
from obsq.csc.status import decoded
from obsq.csc.supervisor import Child, Supervisor

#: Every member of the simulated observatory, in start order, with the state `obsq weekly`
#: wants it in: ATCS and LATISS enabled (as the procedure leaves them), the lamp and the
#: reduction service in STANDBY (BLOCK-309 enables them), the queue enabled.
OBSERVATORY: tuple[tuple[ComponentId, State], ...] = (
    (ComponentId("ATWhiteLight"), State.STANDBY),
    (ComponentId("ATSpectrograph"), State.ENABLED),
    (ComponentId("ATDome"), State.ENABLED),
    (ComponentId("ATMCS"), State.ENABLED),
    (ComponentId("ATCamera"), State.ENABLED),
    (ComponentId("OCPS", 1), State.STANDBY),
    (ComponentId("ScriptQueue", 2), State.ENABLED),
)
#: The auxiliary telescope's components (the hardware of the observatory).
TELESCOPE = tuple(str(cid) for cid, _ in OBSERVATORY[:5])
#: The Scheduler that queues blocks on ScriptQueue:2 (Rubin's addBlock) and runs the schedule's rules.
SCHEDULER = ComponentId("Scheduler", 2)
#: What `obsq up` brings up by default: the observatory and its Scheduler (`obsq weekly` queues
#: its blocks itself, so it runs without one).
SITE: tuple[tuple[ComponentId, State], ...] = (*OBSERVATORY, (SCHEDULER, State.ENABLED))


def site_principals() -> list[str]:
    """Every principal of a site broker: each member of the observatory, the scheduler, the scripts, the people."""
    return [*(principal_user(cid) for cid, _ in OBSERVATORY), principal_user(SCHEDULER), SCRIPTS_PRINCIPAL, *PEOPLE]


#: A member alive but with no heartbeat yet, that has used no CPU for this long, is silent (s).
SILENT_LIMIT_S = 60.0
READY_POLL_S = 0.1
#: How often the bring-up says what it is still waiting for (s).
WAITING_REPORT_S = 10.0


class BringUpError(ObsqError):
    """A member did not come up: the message names it, says why, and quotes its log."""


def member(text: str) -> ComponentId:
    """A member of the observatory by name (`ScriptQueue`) or name and index (`ScriptQueue:2`)."""
    name, _, index = text.partition(":")
    for cid, _ in SITE:
        if cid.name == name and (not index or index == str(cid.index)):
            return cid
    known = ", ".join(str(cid) for cid, _ in SITE)
    raise ValueError(f"unknown component {text!r}; the observatory has {known}")


def component_argv(
    cid: ComponentId,
    *,
    broker: str,
    root: str,
    ca_file: str | None = None,
    speed: float = 1.0,
    epoch: float | None = None,
    data: Path | None = None,
    database: str | None = None,
    state: State = State.STANDBY,
    inject: Sequence[str] = (),
    simulate: bool = True,
    devices: Mapping[str, str] | None = None,
    device_speed: float = 1.0,
) -> list[str]:
    """One component process, `obsq csc run NAME ...` with this interpreter (the one place it is written).

    With `devices` (its real devices by role) it runs on them, not on its simulator.
    """
    argv = [sys.executable, "-m", "obsq.csc.cli", "csc", "run", str(cid), "--broker", broker, "--root", root,
            "--speed", f"{speed:g}", "--state", state.name.lower()]  # fmt: skip
    if devices:
        argv += [f"--device={role}={url}" for role, url in devices.items()]
        if device_speed != 1.0:
            argv += ["--device-speed", f"{device_speed:g}"]
    elif simulate:
        argv.append("--simulate")
    if ca_file:
        argv += ["--ca-file", ca_file]
    if epoch is not None:
        argv += ["--epoch", repr(epoch)]
    if data is not None:
        argv += ["--data", str(data)]
    if database:
        argv += ["--database", database]
    return argv + [f"--inject={i}" for i in injections_for(cid.name, list(inject))]


def log_name(cid: ComponentId) -> str:
    return str(cid).replace(":", "-") + ".log"


@dataclass
class _Seen:
    """What the bus has shown of one member's current process."""

    heartbeat: bool = False
    state: State | None = None


@dataclass
class Observatory:
    """The members to bring up and how: broker, root, clock speed, data folder, fault injections."""

    url: BrokerUrl
    root: str
    data: Path
    speed: float = 1.0
    members: Sequence[tuple[ComponentId, State]] = OBSERVATORY
    inject: Sequence[str] = ()
    report: Callable[[str], None] = print
    silent_limit_s: float = SILENT_LIMIT_S
    #: each member's own principal's credentials file is DIR/PRINCIPAL.env (else all run as this process)
    credentials_dir: Path | None = None
    #: the site's database for every member's registries (else SQLite files in `data`)
    database: str | None = None
    #: the simulated TAI at bring-up (default: now); needs a speed other than 1
    start_tai: float | None = None
    #: the members on real devices: component name -> its devices by role (the site's devices file)
    devices: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    #: the devices' clock speed: 1 for real ones; `speed` for obsq's served simulation (`obsq alpaca serve`)
    device_speed: float = 1.0
    #: every member's clock epoch (TAI); default: from `start_tai`, else the moment of bring-up
    epoch_tai: float | None = None
    children: dict[ComponentId, Child] = field(default_factory=dict)

    def epoch(self, now_tai: float) -> float:
        """The epoch every member's clock is given: sim(t) = epoch + (t - epoch) * speed, so sim(now) = start."""
        if self.epoch_tai is not None:
            return self.epoch_tai
        if self.start_tai is None:
            return now_tai
        if self.speed == 1.0:
            raise BringUpError("a simulated start time needs a clock speed other than 1 (--speed)")
        return (self.start_tai - self.speed * now_tai) / (1.0 - self.speed)

    def plan(self, epoch: float) -> list[Child]:
        return [
            Child(str(cid), component_argv(cid, broker=str(self.url), root=self.root, ca_file=self.url.ca_file,
                                           speed=self.speed, epoch=epoch, data=self.data, database=self.database,
                                           state=state, inject=self.inject, devices=self.devices.get(cid.name),
                                           device_speed=self.device_speed),
                  self.data / "logs" / log_name(cid), self._environment(cid))
            for cid, state in self.members
        ]  # fmt: skip

    def _environment(self, cid: ComponentId) -> dict[str, str]:
        """A member's credentials, in its environment: its own principal's file, or this process's."""
        if self.credentials_dir is None:
            return child_environment(self.url)
        env = child_environment(self.url, self.credentials_dir / f"{principal_user(cid)}.env")
        return env | {SCRIPT_CREDENTIALS_ENV: str(self.credentials_dir / f"{SCRIPTS_PRINCIPAL}.env")}

    @contextlib.asynccontextmanager
    async def running(self, bus: Bus, wall: Clock) -> AsyncIterator[Supervisor]:
        """Start every member, wait until all are ready, yield; stop them all on the way out.

        `bus` (started, on `self.url`) is used to watch readiness; `wall` is a real-time clock.
        """
        supervisor = Supervisor(wall, lambda line: self.report(f"supervisor: {line}"))
        supervisor.hold_restarts = True
        seen = {cid: _Seen() for cid, _ in self.members}
        subscriptions = [
            await bus.subscribe(f"{self.root}/+/+/evt/{event}", self._observer(seen))
            for event in ("heartbeat", "summaryState")
        ]
        children = self.plan(self.epoch(wall_tai()))
        self.children = {cid: child for (cid, _), child in zip(self.members, children, strict=True)}
        task = asyncio.create_task(supervisor.run(children), name="observatory.supervisor")
        ready = asyncio.create_task(self._wait_ready(seen, wall), name="observatory.ready")
        try:
            done, _ = await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
            if task in done:
                task.result()
                raise BringUpError("the supervisor stopped before the observatory was ready")
            ready.result()
            supervisor.hold_restarts = False
            for subscription in subscriptions:
                await bus.unsubscribe(subscription)
            subscriptions = []
            yield supervisor
        finally:
            ready.cancel()
            with contextlib.suppress(asyncio.CancelledError, ObsqError):
                await ready
            for subscription in subscriptions:
                await bus.unsubscribe(subscription)
            supervisor.stop()
            await task

    def _observer(self, seen: dict[ComponentId, _Seen]) -> Callable[[Message], None]:
        def on_event(topic: Topic, envelope: Envelope) -> None:
            child = self.children.get(topic.component)
            status = seen.get(topic.component)
            if child is None or status is None or envelope.origin != child.pid:
                return  # not ours, or an earlier process of the same component
            if topic.name == "heartbeat":
                status.heartbeat = True
            elif topic.name == "summaryState":
                with contextlib.suppress(KeyError, ValueError, TypeError):
                    status.state = State(envelope.data["summaryState"])

        return decoded(on_event)

    async def _wait_ready(self, seen: dict[ComponentId, _Seen], wall: Clock) -> None:
        wanted = dict(self.members)
        progress: dict[ComponentId, tuple[float, float]] = {}  # last CPU reading, when it last grew
        last_report = wall.monotonic()
        while True:
            now = wall.monotonic()
            waiting = []
            for cid, status in seen.items():
                child = self.children[cid]
                code = child.process.returncode if child.process is not None else None
                if code is not None:  # restarts are held until every member is ready: this is the process we started
                    raise BringUpError(self._failure(child, f"exited with status {code} while starting"))
                if status.heartbeat and status.state == wanted[cid]:
                    continue
                if status.state == State.FAULT:
                    raise BringUpError(self._failure(child, "went to FAULT while starting"))
                waiting.append(cid)
                if status.heartbeat or child.pid is None:
                    continue  # on the bus and on its way to the state asked for (a start may configure)
                cpu, limit_s = process_cpu_s(child.pid), self.silent_limit_s
                if cpu is None:  # no /proc to tell a slow start from a hang: only a wall-clock limit
                    cpu, limit_s = 0.0, 10 * self.silent_limit_s
                last_cpu, since = progress.get(cid, (-1.0, now))
                if cpu > last_cpu:
                    progress[cid] = (cpu, now)
                elif now - since > limit_s:
                    what = f"is alive but silent: no heartbeat and no CPU time used for {limit_s:g} s"
                    raise BringUpError(self._failure(child, what))
            if not waiting:
                return
            if now - last_report > WAITING_REPORT_S:
                last_report = now
                self.report(f"waiting for {', '.join(map(str, waiting))} ({len(seen) - len(waiting)} of "
                            f"{len(seen)} ready)")  # fmt: skip
            await wall.sleep(READY_POLL_S)

    def _failure(self, child: Child, what: str) -> str:
        tail = child.log_tail()
        quoted = "\n".join(f"  | {line}" for line in tail) if tail else "  (the log is empty)"
        return f"{child.name} (pid {child.pid}) {what}; the last lines of {child.log_path}:\n{quoted}"
