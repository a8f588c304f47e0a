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

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import yaml

from obsq.csc.clock import TAI_MINUS_UTC_S
from obsq.csc.component import AckError, AckTimeoutError, BaseCsc, Command, CommandLinkLostError, Remote
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
from obsq.csc.scheduler.runs import BlockState, Effects, PlannedBlock, Run, execution_id
from obsq.csc.scheduler.schedule import Rule, Schedule, default_schedule_path, read_schedule
from obsq.csc.scheduler.store import SchedulerStore
from obsq.csc.scheduler.sun import Sun
from obsq.csc.scriptqueue.blocks import available_blocks, block_folders, block_target, expand_block, read_block
from obsq.scripts.library import ScriptRoots, load_script_class
from obsq.scripts.states import ScriptState

QUEUE = ComponentId("ScriptQueue", 2)
#: Rubin's Scheduler DetailedState and BlockStatus values.
IDLE, RUNNING = 1, 2
STARTED, EXECUTING, COMPLETED, ERROR = 3, 4, 5, 6
_BLOCK_STATUS = {STARTED: "STARTED", EXECUTING: "EXECUTING", COMPLETED: "COMPLETED", ERROR: "ERROR"}
#: How long (real s) the queue may go without a word while it accepts a block: it says INPROGRESS every few
#: seconds while it starts and configures the block's scripts, so this is no limit on that work.
ADD_BLOCK_SILENCE_S = 120.0
#: How many times a block is added when the queue did not answer (each time after asking the queue whether
#: it holds the block's execution id already), and how long (real s) to wait for the queue to be back.
ADD_ATTEMPTS = 3
QUEUE_BACK_S = 120.0
MANUAL = "addBlock"


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
        self._runs: dict[tuple[str, float], Run] = {}
        self._next_look: dict[tuple[str, float], float] = {}
        self._postponed: dict[tuple[str, float], str] = {}  # the last reason of each postponed occurrence
        self._decided: set[tuple[str, float]] = set()  # occurrences queued or skipped (the store's, as seen)
        self._completed: dict[str, int] = {}
        self._adding: set[tuple[str, float]] = set()  # runs whose blocks are being added
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
        stopped: list[int] = []
        for run in list(self._runs.values()):
            effects = run.abandon(f"stopped by {command.identity} (Scheduler stop, abort)")
            stopped += effects.stop
            await self._carry_out(run, effects)
        safe = [b.label for run in self._runs.values() for b in run.blocks if b.safe]
        return f"stopped; {len(stopped)} queued or running scripts stopped" + (
            f"; the safe blocks still run: {', '.join(safe)}" if safe else ""
        )

    async def _do_add_block(self, command: Command) -> str:
        d = command.data
        progress = f"validating and queueing {d['id'][:64]}"
        async with self.keep_alive(command, lambda: progress):
            override = load_yaml(d["override"], f"addBlock {d['id'][:64]}: override") if d["override"].strip() else {}
            if not isinstance(override, dict):
                raise ValidationError(f"addBlock {d['id'][:64]}: override must be a mapping")
            program = await self.clock.to_thread(self.check_block, d["id"], override, d["target"])
            key = f"{command.identity}|{command.origin}|{command.seq_num}"
            execution = d["executionId"] or execution_id(program, self.clock.tai(), key)
            block = PlannedBlock(d["id"], program, execution, override=d["override"], target=d["target"])
            now = self.clock.tai() - TAI_MINUS_UTC_S
            while (MANUAL, now) in self._runs:  # two at one instant: each run its own key
                now += 0.001
            progress = f"queueing {d['id'][:64]} ({execution})"
            await self._queue(Run(MANUAL, now, [block], d["failureStrategy"]), stored="once queued")
        if block.state == BlockState.NOT_QUEUED:
            raise ExpectedError(block.reason)  # refused by the queue: nothing was queued, nothing to follow
        return json.dumps(block.scripts)

    def check_block(self, block_id: str, override: dict[str, Any], target: str = "") -> str:
        """The block's program; ValidationError naming the block, the script and the field unless it would queue."""

        def check_script(path: str, standard: bool, config: str) -> None:
            cls = load_script_class(self.roots.resolve(path, standard))
            try:
                cls.validate_configuration(config)
            except ValidationError as exc:
                raise ValidationError(f"script {path}: {exc}") from None

        data, label = read_block(block_id, self.block_dirs)
        given = block_target(target, f"addBlock {block_id[:64]}: target", self.clock.tai())
        return expand_block(data, label, override, check_script, given).program

    # -- queueing and following ------------------------------------------------------------

    async def _queue(self, run: Run, *, stored: Literal["now", "once queued", "already"] = "now") -> None:
        """Add the run's blocks to ScriptQueue:2 in order (runs.py's policy) and follow them to their end.

        `stored`: a rule's run is written down `now`, before anything is added (a restart finds it even if
        nothing was queued); an addBlock's run `once queued` (a refused block leaves nothing behind); a run
        followed again after a restart is in the store `already`.
        """
        self._runs[run.key] = run
        self._adding.add(run.key)  # its end is decided here, after its last block was added and written down
        try:
            await self._add_all(run, stored)
        finally:
            self._adding.discard(run.key)
        if run.key not in self._runs:
            return  # nothing was queued (a refused addBlock)
        self.log.info("run_queued", rule=run.rule, blocks=",".join(run.labels), scripts=len(run.scripts))
        await self._publish_run(run, self._going(run))
        if run.over:  # every block ran to its end while the later ones were added
            await self._finish(run)

    async def _add_all(self, run: Run, stored: str) -> None:
        recorded = stored != "once queued"
        if stored == "now":
            await self.clock.to_thread(self.store.start_run, run.rule, run.occurrence, self.clock.tai(),
                                       run.plan_json())  # fmt: skip
        while (position := run.next_to_add()) is not None:
            await self._add(run, position)
            if recorded:
                await self.clock.to_thread(self.store.update_run, run.rule, run.occurrence, run.plan_json())
            elif run.blocks[position].state != BlockState.NOT_QUEUED:
                await self.clock.to_thread(self.store.start_run, run.rule, run.occurrence, self.clock.tai(),
                                           run.plan_json())  # fmt: skip
                recorded = True
        if not recorded:
            self._runs.pop(run.key, None)

    async def _add(self, run: Run, position: int) -> None:
        """Add one block; after a timeout or a lost link, ask the queue whether it holds the block already."""
        block = run.blocks[position]
        queue = self._remotes[str(QUEUE)]
        data = {"id": block.block, "override": block.override, "failureStrategy": run.failure_strategy,
                "executionId": block.execution, "target": block.target}  # fmt: skip
        if run.recovered and (held := await self._held(block.execution)):  # added just before a restart
            await self._carry_out(run, run.queued(position, held))
            return
        for attempt in range(1, ADD_ATTEMPTS + 1):
            try:
                ack = await queue.command("addBlock", data, timeout_s=ADD_BLOCK_SILENCE_S * self.clock.speed)
            except AckTimeoutError as exc:  # the queue went silent or away: what does it hold now?
                reason = str(exc)
            except CommandLinkLostError as exc:
                reason = str(exc)
            except AckError as exc:  # the queue refused it, and said why
                await self._carry_out(run, run.not_queued(position, exc.ack.result.removeprefix("Failed: ")))
                return
            else:
                await self._carry_out(run, run.queued(position, json.loads(ack.result)))
                await self._block_status(block.label, STARTED, run)
                return
            self.log.warning("add_block_unanswered", block=block.label, execution=block.execution, attempt=attempt,
                             reason=reason)  # fmt: skip
            held = await self._held(block.execution)
            if held:
                self.log.info("add_block_found", block=block.label, execution=block.execution, scripts=held)
                await self._carry_out(run, run.queued(position, held))
                await self._block_status(block.label, STARTED, run)
                return
        await self._carry_out(run, run.not_queued(position, f"no answer from the queue in {ADD_ATTEMPTS} tries: "
                                                            f"{reason}"))  # fmt: skip

    async def _held(self, execution: str) -> list[int]:
        """The scripts ScriptQueue:2 holds (queued, current or recent) with this execution id, once it answers."""
        queue = self._remotes[str(QUEUE)]
        if not await queue.wait_live(QUEUE_BACK_S):
            return []
        try:
            await queue.command("showQueue", timeout_s=60 * self.clock.speed)
        except AckError:
            return []
        data = queue.event("queue").get()
        items = json.loads(data["items"]) if data else []
        return [i["index"] for i in items if i.get("execution") == execution]

    async def _carry_out(self, run: Run, effects: Effects) -> None:
        """Stop the scripts a failed run drops; resume a queue paused by the failure, so the safe blocks run."""
        if not effects.stop and not effects.resume:
            return
        queue = self._remotes[str(QUEUE)]
        self.log.warning("run_failing", rule=run.rule, failure=run.failure or "", stopping=len(effects.stop),
                         safe=",".join(b.label for b in run.blocks if b.safe))  # fmt: skip
        await self._publish_run(run, self._going(run))
        try:
            if effects.stop:
                indices = list(effects.stop)
                await queue.command("stopScripts", {"salIndices": (indices + [0] * 400)[:400], "length": len(indices),
                                                    "terminate": False}, timeout_s=60 * self.clock.speed)  # fmt: skip
            state = queue.event("queue").get()
            if effects.resume and state and not state["running"]:
                await queue.command("resume", timeout_s=60 * self.clock.speed)
                self.log.info("queue_resumed", rule=run.rule, why="the run failed: its safe blocks run")
        except AckError as exc:
            self.log.error("run_recovery_failed", rule=run.rule, reason=str(exc))

    def _going(self, run: Run) -> str:
        """The run's outcome while it goes on: running, or failing with what happens next."""
        if run.failure is None:
            return "running"
        safe = [b.label for b in run.blocks if b.safe]
        then = f"running the safe blocks {', '.join(safe)}" if safe else "no safe block to run"
        return f"failing: {run.failure}; {then}"

    async def _recover_runs(self) -> None:
        """Follow again the runs that were going when the Scheduler stopped; add the blocks not yet added."""
        for stored in await self.clock.to_thread(functools.partial(self.store.runs, unfinished=True)):
            if (stored.rule, stored.occurrence) in self._runs:
                continue
            run = Run(stored.rule, stored.occurrence, [])
            if stored.plan is not None:
                run.restore(stored.plan)
            else:  # a run stored by an older obsq: its script indices only
                run.blocks = [PlannedBlock("?", "?", "", state=BlockState.QUEUED, scripts=stored.indices)]
                run.restore({"blocks": [run.blocks[0].to_json()]})
            self._runs[run.key] = run
            for index in [s.index for s in run.scripts.values() if not s.ended]:
                try:
                    await self._remotes[str(QUEUE)].command("showScript", {"scriptSalIndex": index},
                                                            timeout_s=30 * self.clock.speed)  # fmt: skip
                except AckError as exc:  # the queue no longer knows it: it ended while we were away
                    lost = {"scriptSalIndex": index, "processState": 8, "scriptState": 0, "path": "",
                            "reason": f"not known to the queue: {exc}"}  # fmt: skip
                    self._on_script(lost)
            if run.next_to_add() is not None:
                self.create_task(self._queue(run, stored="already"), f"resume run {run.rule}")
            elif run.over:
                await self._finish(run)

    def _on_script(self, data: dict[str, Any]) -> None:
        for run in list(self._runs.values()):
            seen, effects = run.script(data)
            if seen is None:
                continue
            block = run.blocks[seen.block]
            if seen.state == ScriptState.RUNNING and seen.block in run.executing and not block.reason:
                block.reason = "executing"  # said once per block
                self.create_task(self._block_status(block.label, EXECUTING, run), "block status")
            if effects.stop or effects.resume:
                self.create_task(self._carry_out(run, effects), "run failing")
            if run.over and run.key not in self._adding:
                self.create_task(self._finish(run), "run end")
            return

    async def _finish(self, run: Run) -> None:
        if self._runs.pop(run.key, None) is None:
            return  # finished already
        outcome = run.outcome()
        if outcome == "COMPLETED" and run.flats:
            await self.clock.to_thread(self.store.add_flats, list(run.flats))
        await self.clock.to_thread(self.store.end_run, run.rule, run.occurrence, outcome, self.clock.tai(),
                                   run.plan_json())  # fmt: skip
        for position, block in enumerate(run.blocks):
            if block.state in (BlockState.DROPPED, BlockState.NOT_QUEUED) and not block.scripts:
                continue
            ok = run.block_ok(position)
            if ok:
                self._completed[block.label] = self._completed.get(block.label, 0) + 1
            await self._block_status(block.label, COMPLETED if ok else ERROR, run)
        await self._publish_run(run, outcome)
        log = self.log.info if outcome == "COMPLETED" else self.log.error
        log("run_ended", rule=run.rule, blocks=",".join(run.labels), outcome=outcome)

    async def _block_status(self, block: str, status: int, run: Run) -> None:
        await self.publish_event("blockStatus", {
            "id": block, "statusId": status, "status": _BLOCK_STATUS[status],
            "executionsCompleted": self._completed.get(block, 0), "executionsTotal": 1,
            "hash": "", "definition": "", "failureStrategy": run.failure_strategy,
        }, force=True)  # fmt: skip

    async def _publish_run(self, run: Run, outcome: str) -> None:
        await self.publish_event("run", {
            "rule": run.rule, "occurrence": iso_utc(run.occurrence), "blocks": ",".join(run.labels),
            "salIndices": ",".join(map(str, run.indices())), "outcome": outcome,
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
            run = _flats_run(rule, occurrence, seen, self.clock.tai()) if rule.cadence_flats else _rule_run(
                rule, occurrence, self.clock.tai())  # fmt: skip
            try:
                for block in run.blocks:
                    given = load_yaml(block.override, "override") if block.override else {}
                    await self.clock.to_thread(self.check_block, block.block, given)
            except (ValidationError, ExpectedError) as exc:  # a block that no longer validates: nothing is queued
                self.log.error("run_not_queued", rule=rule.name, reason=str(exc))
                for position in range(len(run.blocks)):
                    run.not_queued(position, str(exc))
                await self.clock.to_thread(self.store.start_run, rule.name, occurrence, self.clock.tai(),
                                           run.plan_json())  # fmt: skip
                self._runs[run.key] = run
                await self._finish(run)
                return
            await self._queue(run)

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


def _rule_run(rule: Rule, occurrence: float, tai: float) -> Run:
    """A rule's run: its blocks in order, the safe ones last, each with an execution id of its own."""
    order = [b for b in rule.blocks if b not in rule.safe] + list(rule.safe)
    target = json.dumps(dict(rule.target)) if rule.target is not None else ""
    blocks = [PlannedBlock(b, b, execution_id(b, tai, f"{rule.name}|{occurrence}|{i}"), safe=b in rule.safe,
                           target=target) for i, b in enumerate(order)]  # fmt: skip
    return Run(rule.name, occurrence, blocks)


def _flats_run(rule: Rule, occurrence: float, seen: Conditions, tai: float) -> Run:
    """A flats rule's run: its block once per flat set due and trained, each with its configuration."""
    assert rule.cadence_flats is not None
    taken = [s for s in seen.flat_sets if s.taken]
    block = rule.blocks[0]
    blocks = [
        PlannedBlock(block, block, execution_id(block, tai, f"{rule.name}|{occurrence}|{i}"), override=yaml.safe_dump(
            {"filter": dict(s.params)["filter"], "grating": dict(s.params)["grating"] or "empty_1",
             "exposure": s.exposure_s, "count": rule.cadence_flats["count"]}))
        for i, s in enumerate(taken)
    ]  # fmt: skip
    flats = tuple((session, s.params) for s in taken for session in s.sessions)
    return Run(rule.name, occurrence, blocks, flats=flats)


def _state_of(remote: Remote) -> str | None:
    """The component's summary state's name, or None when it is gone (its liveness says so) or never seen."""
    liveness = remote.event("liveness").get()
    if liveness and not liveness.get("alive", True):
        return None
    data = remote.event("summaryState").get()
    return State(data["summaryState"]).name if data else None
