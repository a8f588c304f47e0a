"""Scheduler:2: queues blocks on ScriptQueue:2 — Rubin's addBlock, and the schedule's rules by itself.

`addBlock` validates the block in full at the door (the block file, its templates, each
script's configuration against the script's schema), queues it with the queue's `addBlock`
and follows the queue's `script` events to its end, publishing Rubin's `blockStatus`
(STARTED, EXECUTING, COMPLETED or ERROR).

Running (from ENABLED unless `autostart` is false; `stop` and `resume` as Rubin's), it looks at
its rules every `check_interval` s of clock time: the latest occurrence of each rule that has
no final decision is decided by the guards (model.py) — queue, skip or postpone — and every
decision is a `decision` event, a log line and a row of the store. An occurrence that was
queued or skipped is never decided again, so a restart mid-week queues nothing twice; the runs
still going when it stopped are followed again (the queue shows their scripts).
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from obsq.csc.clock import TAI_MINUS_UTC_S
from obsq.csc.component import BaseCsc, Command, Remote
from obsq.csc.core.errors import ExpectedError, ValidationError
from obsq.csc.core.states import State
from obsq.csc.core.topics import ComponentId
from obsq.csc.core.yamltext import load_yaml
from obsq.csc.scheduler.flats import FlatSet, Program, flats_due, lights_from
from obsq.csc.scheduler.model import (
    Action,
    Conditions,
    Decision,
    certified_this_week,
    decide,
    due_by_type,
    iso_utc,
)
from obsq.csc.scheduler.schedule import Rule, Schedule, default_schedule_path, read_schedule
from obsq.csc.scheduler.store import SchedulerStore
from obsq.csc.scheduler.sun import Sun
from obsq.csc.scriptqueue.blocks import available_blocks, block_folders, expand_block, read_block
from obsq.scripts.library import ScriptRoots, load_script_class
from obsq.scripts.states import ScriptState

QUEUE = ComponentId("ScriptQueue", 2)
#: Rubin's Scheduler DetailedState and BlockStatus values.
IDLE, RUNNING = 1, 2
STARTED, EXECUTING, COMPLETED, ERROR = 3, 4, 5, 6
_BLOCK_STATUS = {STARTED: "STARTED", EXECUTING: "EXECUTING", COMPLETED: "COMPLETED", ERROR: "ERROR"}
#: The queue's process states that end a script (DONE, LOADFAILED, CONFIGURE_FAILED, TERMINATED, LOST).
_ENDED_PROCESS = {4, 5, 6, 7, 8}
#: How long the queue may take to accept a block (it starts and configures every script first).
ADD_BLOCK_TIMEOUT_S = 120.0
MANUAL = "addBlock"
#: How many script events of unknown scripts are kept (for a run whose addBlock ack is still coming).
EARLY_KEPT = 500


@dataclass
class _Script:
    index: int
    block: str
    state: int = 0
    path: str = ""
    reason: str = ""
    ended: bool = False


@dataclass
class _Run:
    """Blocks the Scheduler queued, followed to their end."""

    rule: str
    occurrence: float
    blocks: tuple[str, ...]
    executions: dict[str, str]
    failure_strategy: int
    scripts: dict[int, _Script] = field(default_factory=dict)
    executing: set[str] = field(default_factory=set)
    #: each block's configuration override (YAML), where it has one
    overrides: tuple[str, ...] = ()
    #: each block's program as shown in blockStatus (a block given as JSON is sent as given, shown by program)
    labels: tuple[str, ...] = ()
    #: the (session, parameters) flats history this run adds once it completes
    flats: tuple[tuple[Any, Any], ...] = ()
    #: set once the run is in the store and announced: its end waits for it
    recorded: asyncio.Event = field(default_factory=asyncio.Event)

    def running_text(self) -> str:
        going = [s for s in self.scripts.values() if not s.ended]
        if not going:
            return ""
        first = going[0]
        return f"{first.block} script {first.index} {ScriptState(first.state).name if first.state else 'queued'}"


class SchedulerCsc(BaseCsc):
    """Scheduler:`index` (2, the auxiliary telescope's)."""

    def __init__(
        self,
        *,
        store: SchedulerStore,
        calibrations: Callable[[], list[Any]],
        library_due: Callable[[], list[Any]] | None = None,
        flats_source: Callable[[], tuple[list[Any], dict[Any, float]]] | None = None,
        index: int = 2,
        roots: ScriptRoots | None = None,
        block_dirs: list[Path] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__("Scheduler", index=index, **kwargs)
        self.store = store
        self.calibrations = calibrations
        self.library_due = library_due
        #: the acquired images and the flat wizard's trained exposures, for flats by cadence
        self.flats_source = flats_source
        self.roots = roots or ScriptRoots.default()
        self.block_dirs = block_folders(block_dirs)
        self.schedule: Schedule | None = None
        self.sun: Sun | None = None
        self.autostart = True
        self._running = False
        self._loop_started = False
        self._remotes: dict[str, Remote] = {}
        self._runs: dict[tuple[str, float], _Run] = {}
        self._next_look: dict[tuple[str, float], float] = {}
        self._postponed: dict[tuple[str, float], str] = {}  # the last reason of each postponed occurrence
        self._decided: set[tuple[str, float]] = set()  # occurrences queued or skipped (the store's, as seen)
        self._completed: dict[str, int] = {}
        self._early: dict[int, dict[str, Any]] = {}  # script events not yet known to belong to a run
        for name, handler in (("addBlock", self._do_add_block), ("resume", self._do_resume), ("stop", self._do_stop)):
            self.register_command(name, handler)

    # -- life cycle ------------------------------------------------------------------------

    async def configure(self, config: dict[str, Any]) -> None:
        path = Path(config["schedule"]) if config["schedule"] else default_schedule_path()
        self.autostart = config["autostart"]
        if path is None:  # an installed obsq without a site schedule: addBlock only
            self.log.warning("no_schedule", detail="no schedule file ($OBSQ_SCHEDULE, configuration 'schedule'): "
                             "only addBlock is served")  # fmt: skip
            self.schedule, self.sun = None, None
            return
        known = available_blocks(self.block_dirs)
        self.schedule = await self.clock.to_thread(read_schedule, path, list(known))
        self.sun = Sun(self.schedule.site)

    async def handle_summary_state(self) -> None:
        if self.summary_state in (State.DISABLED, State.ENABLED):
            await self._start_remotes()
        if self.summary_state == State.ENABLED:
            if self.autostart:
                self._running = True
            if not self._loop_started:
                self._loop_started = True
                self.create_task(self._loop(), "rules")
            await self._recover_runs()
        else:
            self._running = False
        await self._publish_state()

    async def _start_remotes(self) -> None:
        """A remote for the queue and every component the rules look at (those a new schedule adds, too)."""
        rules = self.schedule.rules if self.schedule else ()
        names = {str(QUEUE)} | {n for rule in rules for n in (*rule.needs_enabled, *rule.no_fault)}
        for name in sorted(names - set(self._remotes)):
            remote = Remote(self.bus, name, clock=self.clock, root=self.root, identity=self.identity)
            await remote.start()
            self._remotes[name] = remote
            if name == str(QUEUE):
                remote.event("script").callback = lambda envelope: self._on_script(envelope.data)
        await self._publish_schedule()

    async def _on_closing(self) -> None:
        for remote in self._remotes.values():
            await remote.close()  # no script event reaches a Scheduler that has stopped
        self._remotes.clear()

    async def _publish_state(self) -> None:
        await self.publish_event("detailedState", {"substate": RUNNING if self._running else IDLE})

    async def _publish_schedule(self) -> None:
        if self.schedule is None:
            await self.publish_event("schedule", {"source": "none", "site": "", "timezone": "", "rules": ""})
            return
        now = self.clock.tai() - TAI_MINUS_UTC_S
        lines = []
        for rule in self.schedule.rules:
            upcoming = rule.occurrences(self.schedule.site, now, now + 400 * 86400)[:1]
            when = iso_utc(upcoming[0]) if upcoming and rule.enabled else "never (disabled)"
            lines.append(f"{rule.name}: '{rule.cron}' -> {', '.join(rule.blocks)}; next {when}")
        site = self.schedule.site
        await self.publish_event("schedule", {"source": self.schedule.source, "site": site.name,
                                              "timezone": site.timezone, "rules": "\n".join(lines)})  # fmt: skip

    # -- commands --------------------------------------------------------------------------

    async def _do_resume(self, command: Command) -> str:
        self._running = True
        await self._publish_state()
        return "running the schedule's rules"

    async def _do_stop(self, command: Command) -> str:
        self._running = False
        await self._publish_state()
        if not command.data["abort"]:
            return "stopped: no rule is looked at until resume"
        going = [s.index for run in self._runs.values() for s in run.scripts.values() if not s.ended]
        if going:
            indices = (going + [0] * 400)[:400]
            await self._remotes[str(QUEUE)].command(
                "stopScripts", {"salIndices": indices, "length": len(going), "terminate": False}, timeout_s=60
            )
        return f"stopped; {len(going)} queued or running scripts stopped"

    async def _do_add_block(self, command: Command) -> str:
        d = command.data
        await command.in_progress(ADD_BLOCK_TIMEOUT_S + 30, f"validating and queueing {d['id'][:64]}")
        override = load_yaml(d["override"], f"addBlock {d['id'][:64]}: override") if d["override"].strip() else {}
        if not isinstance(override, dict):
            raise ValidationError(f"addBlock {d['id'][:64]}: override must be a mapping")
        program = await self.clock.to_thread(self.check_block, d["id"], override)
        now = self.clock.tai() - TAI_MINUS_UTC_S
        run = _Run(MANUAL, now, (d["id"],), {}, d["failureStrategy"], labels=(program,))
        try:
            await self._queue(run, override=d["override"], execution=d["executionId"])
        except BaseException:
            self._runs.pop((run.rule, run.occurrence), None)  # refused by the queue: nothing to follow
            raise
        return json.dumps(sorted(run.scripts))

    def check_block(self, block_id: str, override: dict[str, Any]) -> str:
        """The block's program; ValidationError naming the block, the script and the field unless it would queue."""

        def check_script(path: str, standard: bool, config: str) -> None:
            cls = load_script_class(self.roots.resolve(path, standard))
            try:
                cls.validate_configuration(config)
            except ValidationError as exc:
                raise ValidationError(f"script {path}: {exc}") from None

        data, label = read_block(block_id, self.block_dirs)
        return expand_block(data, label, override, check_script).program

    # -- queueing and following ------------------------------------------------------------

    async def _queue(self, run: _Run, *, override: str = "", execution: str = "") -> None:
        """Queue every block of `run` on ScriptQueue:2, in order, and follow it."""
        key = (run.rule, run.occurrence)
        self._runs[key] = run
        queue = self._remotes[str(QUEUE)]
        for i, block in enumerate(run.blocks):
            given = run.overrides[i] if i < len(run.overrides) else override
            ack = await queue.command(
                "addBlock",
                {"id": block, "override": given, "failureStrategy": run.failure_strategy, "executionId": execution},
                timeout_s=ADD_BLOCK_TIMEOUT_S,
            )
            label = run.labels[i] if i < len(run.labels) else block
            for index in json.loads(ack.result):
                run.scripts.setdefault(index, _Script(index, label))
            await self._block_status(label, STARTED, run)
            for index in json.loads(ack.result):  # what the queue said of them before its ack came
                if (early := self._early.pop(index, None)) is not None:
                    self._on_script(early)
        indices = sorted(run.scripts)
        await self.clock.to_thread(self.store.start_run, run.rule, run.occurrence, self.clock.tai(), indices)
        await self._publish_run(run, "running")
        run.recorded.set()
        self.log.info("run_queued", rule=run.rule, blocks=",".join(run.blocks), scripts=len(indices))
        if all(s.ended for s in run.scripts.values()):  # every block ran to its end while the later ones were added
            await self._finish(run)

    async def _recover_runs(self) -> None:
        """Follow again the runs that were going when the Scheduler stopped: the queue shows their scripts."""
        for stored in await self.clock.to_thread(functools.partial(self.store.runs, unfinished=True)):
            key = (stored.rule, stored.occurrence)
            if key in self._runs:
                continue
            rule = self.schedule.rule(stored.rule) if self.schedule and self._has_rule(stored.rule) else None
            blocks = rule.blocks if rule else ("?",)
            run = _Run(stored.rule, stored.occurrence, blocks, {}, 1)
            run.scripts = {i: _Script(i, "?") for i in stored.indices}
            run.recorded.set()  # it is in the store already
            self._runs[key] = run
            for index in stored.indices:
                try:
                    await self._remotes[str(QUEUE)].command("showScript", {"scriptSalIndex": index}, timeout_s=30)
                except Exception as exc:  # the queue no longer knows it: it ended while we were away
                    lost = {"scriptSalIndex": index, "processState": 8, "scriptState": 0, "path": "",
                            "reason": f"not known to the queue: {exc}"}  # fmt: skip
                    self._on_script(lost)

    def _has_rule(self, name: str) -> bool:
        return self.schedule is not None and any(r.name == name for r in self.schedule.rules)

    def _on_script(self, data: dict[str, Any]) -> None:
        index = data["scriptSalIndex"]
        if not any(index in run.scripts for run in self._runs.values()):
            self._early[index] = data  # perhaps a script of a block whose addBlock ack has not come yet
            while len(self._early) > EARLY_KEPT:
                self._early.pop(next(iter(self._early)))
            return
        for run in self._runs.values():
            script = run.scripts.get(index)
            if script is None or script.ended:
                continue
            script.state, script.path, script.reason = data["scriptState"], data["path"], data["reason"]
            if script.block == "?":  # a run followed again after a restart: the queue says whose it is
                script.block = data.get("blockId") or "?"
            script.ended = data["processState"] in _ENDED_PROCESS or ScriptState(data["scriptState"]).is_final
            if data["scriptState"] == ScriptState.RUNNING and script.block not in run.executing:
                run.executing.add(script.block)
                self.create_task(self._block_status(script.block, EXECUTING, run), "block status")
            if all(s.ended for s in run.scripts.values()):
                self.create_task(self._finish(run), "run end")

    async def _finish(self, run: _Run) -> None:
        await run.recorded.wait()  # its scripts may end before the Scheduler has written it down
        if not all(s.ended for s in run.scripts.values()):
            return  # an earlier block ended while a later one was being added: the run goes on
        key = (run.rule, run.occurrence)
        if self._runs.pop(key, None) is None:
            return
        failed = [s for s in sorted(run.scripts.values(), key=lambda s: s.index) if s.state != ScriptState.DONE]
        if failed:
            first = failed[0]
            state = ScriptState(first.state).name if first.state else "ended"
            outcome = f"ERROR: script {first.index} ({first.path}) {state}" + (
                f": {first.reason}" if first.reason else ""
            )
        else:
            outcome = "COMPLETED"
            if run.flats:
                await self.clock.to_thread(self.store.add_flats, list(run.flats))
        await self.clock.to_thread(self.store.end_run, run.rule, run.occurrence, outcome, self.clock.tai())
        for block in run.labels or run.blocks:
            mine = [s for s in run.scripts.values() if s.block == block]
            ok = bool(mine) and all(s.state == ScriptState.DONE for s in mine)
            if ok:
                self._completed[block] = self._completed.get(block, 0) + 1
            await self._block_status(block, COMPLETED if ok else ERROR, run)
        await self._publish_run(run, outcome)
        self.log.info("run_ended", rule=run.rule, blocks=",".join(run.blocks), outcome=outcome)

    async def _block_status(self, block: str, status: int, run: _Run) -> None:
        await self.publish_event("blockStatus", {
            "id": block, "statusId": status, "status": _BLOCK_STATUS[status],
            "executionsCompleted": self._completed.get(block, 0), "executionsTotal": 1,
            "hash": run.executions.get(block, ""), "definition": "", "failureStrategy": run.failure_strategy,
        }, force=True)  # fmt: skip

    async def _publish_run(self, run: _Run, outcome: str) -> None:
        await self.publish_event("run", {
            "rule": run.rule, "occurrence": iso_utc(run.occurrence), "blocks": ",".join(run.blocks),
            "salIndices": ",".join(map(str, sorted(run.scripts))), "outcome": outcome,
        }, force=True)  # fmt: skip

    # -- the rules -------------------------------------------------------------------------

    async def _loop(self) -> None:
        while True:
            if self._running and self.summary_state == State.ENABLED and self.schedule is not None:
                try:
                    await self._look()
                except Exception:
                    self.log.exception("look_failed")
            interval = self.schedule.check_interval_s if self.schedule else 60.0
            await self.clock.sleep(interval)

    async def _look(self) -> None:
        assert self.schedule is not None
        now = self.clock.tai() - TAI_MINUS_UTC_S
        for rule in self.schedule.rules:
            if not rule.enabled:
                continue
            occurrence = rule.latest(self.schedule.site, now)
            if occurrence is None:
                continue
            key = (rule.name, occurrence)
            if self._next_look.get(key, 0.0) > now:
                continue
            if key in self._decided:
                continue
            if await self.clock.to_thread(self.store.final, rule.name, occurrence) is not None:
                self._decided.add(key)  # asked of the store once per occurrence, not at every look
                continue
            if now > occurrence + rule.window_h * 3600:
                if key in self._postponed:  # postponed until the window closed: the last reason stands
                    reason = f"{self._postponed.pop(key)}; its window closed"
                    await self._announce(Decision(rule.name, occurrence, now, Action.SKIP, rule.blocks, reason))
                # missed while the Scheduler was down: said once, for a rule it was already running
                elif await self.clock.to_thread(self.store.knows, rule.name):
                    reason = "its window passed with no decision (the Scheduler was not running)"
                    await self._announce(Decision(rule.name, occurrence, now, Action.SKIP, rule.blocks, reason))
                else:
                    self._next_look[key] = occurrence + 400 * 86400
                continue
            await self._decide(rule, occurrence, now)

    async def _decide(self, rule: Rule, occurrence: float, now: float) -> None:
        assert self.schedule is not None
        assert self.sun is not None
        seen = await self._conditions(rule, now)
        guards = functools.partial(decide, rule, self.schedule.site, self.sun, occurrence, now=now, seen=seen)
        made = await self.clock.to_thread(guards)  # the first look at the Sun computes its year
        if made.action == Action.POSTPONE:
            self._next_look[(rule.name, occurrence)] = now + rule.retry_min * 60
            self._postponed[(rule.name, occurrence)] = made.reason.split("; looking again")[0]
        await self._announce(made)
        if made.action == Action.QUEUE:
            run = _flats_run(rule, occurrence, seen) if rule.cadence_flats else _Run(rule.name, occurrence,
                                                                                      rule.blocks, {}, 1)  # fmt: skip
            try:
                for i, block in enumerate(run.blocks):
                    given = load_yaml(run.overrides[i], "override") if i < len(run.overrides) else {}
                    await self.clock.to_thread(self.check_block, block, given)
                await self._queue(run)
            except Exception as exc:
                self._runs.pop((rule.name, occurrence), None)
                reason = (
                    str(exc) if isinstance(exc, ValidationError | ExpectedError) else f"{type(exc).__name__}: {exc}"
                )
                self.log.error("run_not_queued", rule=rule.name, reason=reason)
                if not run.recorded.is_set():  # not queued, or queued in part: what was queued is written down
                    await self.clock.to_thread(self.store.start_run, rule.name, occurrence, self.clock.tai(),
                                               sorted(run.scripts))  # fmt: skip
                await self.clock.to_thread(self.store.end_run, rule.name, occurrence, f"ERROR: {reason}",
                                           self.clock.tai())  # fmt: skip
                await self._publish_run(run, f"ERROR: not queued: {reason}")

    async def _conditions(self, rule: Rule, now: float) -> Conditions:
        states: dict[str, str | None] = {}
        for name in (*rule.needs_enabled, *rule.no_fault):
            remote = self._remotes.get(name)
            states[name] = _state_of(remote) if remote is not None else None
        queue = self._remotes[str(QUEUE)].event("queue").get()
        running = bool(queue["running"]) if queue else None
        in_progress = "; ".join(
            text for (name, _), run in self._runs.items() if name == rule.name and (text := run.running_text())
        )
        certified: dict[str, list[str]] = {}
        if rule.skip_if_certified and self.schedule is not None:
            products = await self.clock.to_thread(self.calibrations)
            certified = certified_this_week(products, self.schedule.site, now, rule.skip_if_certified)
        due: dict[str, list[str]] = {}
        if rule.only_when_due and self.library_due is not None:
            due = due_by_type(await self.clock.to_thread(self.library_due))
        flat_sets: tuple[FlatSet, ...] = ()
        if rule.cadence_flats is not None and self.flats_source is not None and self.schedule is not None:
            flat_sets = tuple(await self.clock.to_thread(self._flats_due, rule, now))
        return Conditions(states=states, queue_running=running, run_in_progress=in_progress,
                          certified_this_week=certified, due=due, flat_sets=flat_sets)  # fmt: skip

    def _flats_due(self, rule: Rule, now: float) -> list[FlatSet]:
        """The flat sets due by the rule's cadences (runs in a thread: it reads the registry and the table)."""
        assert self.schedule is not None
        assert self.flats_source is not None
        assert rule.cadence_flats is not None
        images, trained = self.flats_source()
        site = self.schedule.site
        lights = lights_from(images, site.zone)
        completed = frozenset(rule.cadence_flats["completed_targets"])
        programs = {name: Program(name, cadence, completed) for name, cadence in rule.cadence_flats["programs"].items()}
        return flats_due(lights, programs, self.store.flats(), trained, site.local(now).date())

    async def _announce(self, made: Decision) -> None:
        await self.clock.to_thread(self.store.record, made)
        if made.action != Action.POSTPONE:
            self._decided.add((made.rule, made.occurrence))
        row = made.row()
        await self.publish_event("decision", {**row, "blocks": ",".join(made.blocks)}, force=True)
        self.log.info("decision", rule=made.rule, occurrence=row["occurrence"], action=row["action"],
                      blocks=",".join(made.blocks), reason=made.reason)  # fmt: skip


def _flats_run(rule: Rule, occurrence: float, seen: Conditions) -> _Run:
    """A flats rule's run: its block once per flat set due and trained, each with its configuration."""
    assert rule.cadence_flats is not None
    taken = [s for s in seen.flat_sets if s.taken]
    overrides = tuple(
        yaml.safe_dump({"filter": dict(s.params)["filter"], "grating": dict(s.params)["grating"] or "empty_1",
                        "exposure": s.exposure_s, "count": rule.cadence_flats["count"]})
        for s in taken
    )  # fmt: skip
    flats = tuple((session, s.params) for s in taken for session in s.sessions)
    return _Run(rule.name, occurrence, tuple(rule.blocks[0] for _ in taken), {}, 1, overrides=overrides, flats=flats)


def _state_of(remote: Remote) -> str | None:
    """The component's summary state's name, or None when it is gone (its liveness says so) or never seen."""
    liveness = remote.event("liveness").get()
    if liveness and not liveness.get("alive", True):
        return None
    data = remote.event("summaryState").get()
    return State(data["summaryState"]).name if data else None
