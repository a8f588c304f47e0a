"""The ScriptQueue service: the queue model, a runner that starts each script, and a store.

Every script is started and configured when it is added (so an invalid script is never
queued, and a queued one starts the moment its turn comes). The script at the top gets a
group id; when the queue runs and nothing is current, it is told to run. The queue moves on
as soon as a script reports DONE, without waiting for its process to end. After every
change the queue is saved and published.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from obsq.csc.clock import TAI_MINUS_UTC_S, day_obs
from obsq.csc.component import AckError, BaseCsc, Command, Remote
from obsq.csc.core.codec import Envelope
from obsq.csc.core.errors import ExpectedError, ObsqError, ValidationError
from obsq.csc.core.states import State
from obsq.csc.core.topics import ComponentId, Topic, TopicKind
from obsq.csc.core.yamltext import load_yaml
from obsq.csc.database import DatabaseError
from obsq.csc.interfaces import load_interface
from obsq.csc.scriptqueue.blocks import block_folders, block_target, expand_block, read_block
from obsq.csc.scriptqueue.model import (
    MAX_HISTORY,
    FailureStrategy,
    LastWord,
    Location,
    ProcessState,
    QueueItem,
    QueueModel,
)
from obsq.csc.scriptqueue.runner import ScriptHandle, ScriptRunner
from obsq.csc.scriptqueue.store import QueueStore
from obsq.scripts.base import BaseScript
from obsq.scripts.library import ScriptRoots, check_configuration, load_script_class
from obsq.scripts.states import ScriptState

#: Real-time limits on starting scripts, which no simulated clock speeds up. None is a limit on work
#: that shows progress: a starting process that has used no CPU time for LOAD_STALL_S has hung (where
#: CPU time cannot be told, a script run as a task, it is the limit from the start); `configure` is
#: measured against the script's own life (its heartbeats); add and addBlock keep their callers
#: waiting (INPROGRESS) while scripts start.
LOAD_STALL_S = 60.0
CONFIGURE_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
#: How often (real s) a starting script's CPU time is read.
CPU_POLL_S = 0.5
#: After a restart, how long (real s) the service waits for the script that ran to say its final state.
LAST_WORD_S = 10.0
#: How often (real s) a save the database refused is tried again.
SAVE_RETRY_S = 2.0
RECENT_HISTORY = 50


@dataclass
class _Running:
    handle: ScriptHandle
    remote: Remote
    terminating: bool = False


def _tai_iso(tai: float) -> str:
    return datetime.datetime.fromtimestamp(tai - TAI_MINUS_UTC_S, tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]


#: The script metadata a nextVisit event carries (Rubin's field list).
_VISIT_FIELDS = ("coordinateSystem", "position", "rotationSystem", "cameraAngle", "filters", "dome", "duration",
                 "nimages", "instrument", "survey", "totalCheckpoints")  # fmt: skip


def block_execution_id(program: str, tai: float, first_index: int) -> str:
    """Rubin's block execution id, BL295_O_20261202_200017: program number, dayObs, and (here) the first script's index.

    Scripts read dayObs and blockExecution from it for their state event.
    """
    number = program.removeprefix("BLOCK-").split("_")[0]
    return f"BL{number}_O_{day_obs(tai)}_{first_index % 1_000_000:06d}"


class ScriptQueueCsc(BaseCsc):
    """Runs scripts, one at a time, each started by `runner` (a process per script in production)."""

    def __init__(
        self,
        *,
        runner: ScriptRunner,
        store: QueueStore,
        roots: ScriptRoots | None = None,
        block_folders: list[Path] | None = None,
        index: int = 2,
        **kwargs: Any,
    ) -> None:
        super().__init__("ScriptQueue", index=index, **kwargs)
        self.runner = runner
        self.roots = roots or ScriptRoots.default()
        self.block_folders = block_folders or []
        self.store = store
        self.model = QueueModel(first_index=index * 100_000)
        self._scripts: dict[int, _Running] = {}
        #: blocks opened by `add` with startBlock: id -> [declared size, scripts added] (`_block_slot`)
        self._blocks_by_add: dict[str, list[int]] = {}
        #: what the last `script` event of each script showed (one is sent whenever that changes)
        self._published_scripts: dict[int, tuple[Any, ...]] = {}
        #: the model's token when `script` events were last looked for
        self._published_token = -1
        self._script_tail: asyncio.Task[None] | None = None
        self._classes: dict[tuple[Path, float], type[BaseScript]] = {}
        self._advance_lock = asyncio.Lock()
        self._unsaved = False
        self._resave: asyncio.Task[None] | None = None
        self.pause_on_failure = True
        self._script_events = list(load_interface("Script").topics(TopicKind.EVENT))
        handlers = {
            "add": self._do_add, "addBlock": self._do_add_block, "move": self._do_move, "requeue": self._do_requeue,
            "stopScripts": self._do_stop_scripts, "resume": self._do_resume, "showQueue": self._do_show_queue,
            "showScript": self._do_show_script, "showAvailableScripts": self._do_show_available,
            "showSchema": self._do_show_schema,
        }  # fmt: skip
        for name, handler in handlers.items():
            self.register_command(name, handler, concurrent=name in ("add", "addBlock", "requeue", "stopScripts"))
        self.register_command("pause", self._do_pause, require_enabled=False)

    # -- life cycle ------------------------------------------------------------------------------

    async def _on_started(self) -> None:
        loaded = await self.clock.to_thread(self.store.load, self.model.first_index)  # waits out a database outage
        lost = loaded.mark_lost(self.clock.tai())
        self.model = loaded
        if lost is not None:
            self.log.warning("script_lost_in_restart", index=lost.index, path=lost.path)
            self.create_task(self._hear_last_word(lost.index), f"last_word.{lost.index}")
        for item in list(self.model.queue):  # they never ran: start their processes again
            item.script_state, item.process_state, item.group_id = ScriptState.UNKNOWN, ProcessState.LOADING, ""
            self.create_task(self._relaunch(item), f"relaunch.{item.index}")
        await self.publish_event(
            "rootDirectories", {"standard": str(self.roots.standard), "external": str(self.roots.external)}
        )
        await self._changed()
        await super()._on_started()

    async def _hear_last_word(self, index: int) -> None:
        said = await self._last_word(index)
        await self._clear_retained(index)
        item = self.model.heard_last_word(index, said) if said is not None else None
        if item is not None:
            self.log.warning("script_cut_by_restart", index=index, path=item.path, reason=item.reason)
            await self._changed()

    async def _last_word(self, index: int) -> LastWord | None:
        """What the script that ran when the service stopped said last: its retained state and progress.

        The script ends with the service that started it, going to a final state if it can: this
        waits for that final state at most LAST_WORD_S real seconds (a script stops within a few),
        and takes what it had said otherwise.
        """
        wall = self.clock.unscaled()
        script = Remote(self.bus, ComponentId("Script", index), clock=wall, root=self.root, identity=self.identity)
        async with script:
            state = script.event("state")
            deadline = wall.monotonic() + LAST_WORD_S
            with contextlib.suppress(TimeoutError):
                await wall.wait_for(state.aget(timeout_s=LAST_WORD_S), LAST_WORD_S)
            while state.has_data and not ScriptState(state.get()["state"]).is_final and wall.monotonic() < deadline:
                await wall.sleep(0.1)
            if not state.has_data:
                return None
            data, progress = state.get(), script.event("progress").get()
            return LastWord(ScriptState(data["state"]), data.get("lastCheckpoint", ""), data.get("reason", ""),
                            int(progress.get("done", 0)), int(progress.get("total", 0)))  # fmt: skip

    async def _relaunch(self, item: QueueItem) -> None:
        try:
            await self._launch(item, log_level=0, pause="", stop="")
        except ExpectedError as exc:
            self.model.finished(item.index, ScriptState.CONFIGURE_FAILED, f"after restart: {exc}", self.clock.tai())
        await self._changed()

    async def handle_summary_state(self) -> None:
        if self.summary_state == State.ENABLED:
            await self._publish_available()
        await self._changed()

    async def configure(self, config: dict[str, Any]) -> None:
        self.pause_on_failure = config["pause_on_failure"]

    # -- validation ------------------------------------------------------------------------------

    def script_class(self, path: str, standard: bool) -> type[BaseScript]:
        file = self.roots.resolve(path, standard)
        key = (file, file.stat().st_mtime)
        if key not in self._classes:
            self._classes[key] = load_script_class(file)
        return self._classes[key]

    def check_script(self, path: str, standard: bool, config: str) -> None:
        """Raise ValidationError naming the script, field and rule unless `config` fits `path`."""
        check_configuration(self.script_class(path, standard), path, config)

    # -- launching -----------------------------------------------------------------------------

    async def _launch(self, item: QueueItem, *, log_level: int, pause: str, stop: str) -> None:
        """Start the script, wait until it listens, configure it; ExpectedError if it fails."""
        await self._start_process(item)
        try:
            await self._configure_started(item, log_level=log_level, pause=pause, stop=stop)
        except ExpectedError:
            await self._kill(item.index)
            raise

    async def _start_process(self, item: QueueItem) -> None:
        """Start the script's process and listen to it (it is LOADING until it answers `configure`)."""
        wall = self.clock.unscaled()
        handle = await self.runner.start(item.index, item.path, item.standard)
        remote = Remote(self.bus, ComponentId("Script", item.index), clock=wall, root=self.root, identity=self.identity)
        running = _Running(handle, remote)
        self._scripts[item.index] = running
        pid = handle.origin

        def mine(handler: Callable[[int, dict[str, Any]], None]) -> Callable[[Envelope], None]:
            # retained events of an earlier process with this index (before a restart) are not news
            return lambda envelope: handler(item.index, envelope.data) if envelope.origin == pid else None

        remote.event("state").callback = mine(self._on_script_state)
        remote.event("progress").callback = mine(self._on_progress)
        remote.event("metadata").callback = mine(self._on_metadata)
        await remote.start()
        self.create_task(self._watch_process(item.index), f"script.{item.index}")

    async def _configure_started(self, item: QueueItem, *, log_level: int, pause: str, stop: str) -> None:
        """Wait until a started script listens and configure it; ExpectedError if it fails (the caller ends it)."""
        running = self._scripts[item.index]
        remote, handle = running.remote, running.handle
        try:
            await self._wait_listening(remote, handle)
            item.configure_start_tai = self.clock.tai()
            await remote.command(
                "configure",
                {"config": item.config, "logLevel": log_level, "pauseCheckpoint": pause, "stopCheckpoint": stop,
                 "blockId": item.block_execution},
                timeout_s=CONFIGURE_TIMEOUT_S,
            )  # fmt: skip
        except (AckError, ExpectedError) as exc:
            reason = exc.ack.result.removeprefix("Failed: ") if isinstance(exc, AckError) else str(exc)
            raise ExpectedError(f"script {item.path}: {reason}") from None
        # its reports may have come before the item was in the model: record where it stands
        metadata = remote.event("metadata").get()
        fields = {"configure_end_tai": self.clock.tai(), "script_state": ScriptState.CONFIGURED,
                  "process_state": ProcessState.CONFIGURED, "duration_s": metadata.get("duration", 0.0),
                  "total": metadata.get("nimages", 0)}  # fmt: skip
        if self.model.find(item.index) is None:  # not in the model yet (a block's, before it is added)
            for name, value in fields.items():
                setattr(item, name, value)
        elif not self.model.in_history(item):  # (one stopped while it loaded stays as it ended)
            self.model.update(item.index, **fields)

    async def _wait_listening(self, remote: Remote, handle: ScriptHandle) -> None:
        """Until the script has published its first state (it then serves commands).

        ExpectedError if its process exits first, or has used no CPU time for LOAD_STALL_S real
        seconds: a busy machine only makes a start slower.
        """
        wall = self.clock.unscaled()
        reader = remote.event("state")
        last_cpu, progress_at, polled_at = -1.0, wall.monotonic(), -CPU_POLL_S
        while (envelope := reader.get_envelope()) is None or envelope.origin != handle.origin:
            if handle.returncode is not None:
                raise ExpectedError(f"the script process exited with status {handle.returncode} while loading")
            now = wall.monotonic()
            if now - polled_at >= CPU_POLL_S:
                polled_at, cpu = now, handle.cpu_s()
                if cpu is not None and cpu > last_cpu:
                    last_cpu, progress_at = cpu, now
                elif now - progress_at > LOAD_STALL_S:
                    raise ExpectedError(
                        f"did not start: its process used no CPU time for {LOAD_STALL_S:g} s"
                        if cpu is not None
                        else f"did not start within {LOAD_STALL_S:g} s"
                    )
            await wall.sleep(0.005)

    async def _kill(self, index: int) -> None:
        running = self._scripts.get(index)
        if running is not None and running.handle.returncode is None:
            running.handle.kill()
            await running.handle.wait()

    async def _watch_process(self, index: int) -> None:
        running = self._scripts[index]
        code = await running.handle.wait()
        await running.remote.close()
        if self._closing.is_set():
            return  # the service is stopping and ended it: after a restart it runs again (queued) or is LOST
        await self._clear_retained(index)
        now = self.clock.tai()
        item = self.model.find(index)
        if running.terminating and item is not None:
            if not item.script_state.is_final and not self.model.in_history(item):
                self.model.finished(index, ScriptState.STOPPED, "terminated by the operator", now)
            self.model.update(index, process_state=ProcessState.TERMINATED)
        else:
            self._end_unrun(self.model.process_ended(index, code, now))
        self._scripts.pop(index, None)
        await self._changed()

    async def _clear_retained(self, index: int) -> None:
        """A finished script's retained events would stay on the broker for ever: clear them."""
        script = ComponentId("Script", index)
        for name in self._script_events:
            with contextlib.suppress(ObsqError):
                await self.bus.publish(str(Topic(self.root, script, TopicKind.EVENT, name)), b"", qos=1, retain=True)

    def _on_script_state(self, index: int, data: dict[str, Any]) -> None:
        state = ScriptState(data["state"])
        item = self.model.update(
            index, script_state=state, last_checkpoint=data.get("lastCheckpoint", ""), reason=data.get("reason", "")
        )
        if item is not None and self._tg is not None:
            self._queue_script_event(item)  # every state, in order, even those a later change overtakes
        if item is not None and state.is_final:
            self._end_unrun(self.model.finished(index, state, data.get("reason", ""), self.clock.tai()))
            if state == ScriptState.FAILED and not self.pause_on_failure:
                self.model.resume(self.clock.tai())
        if self._tg is not None:
            self.create_task(self._changed(), "changed")

    def _end_unrun(self, items: list[QueueItem]) -> None:
        """Scripts that left the queue unrun (the rest of a failed block): their processes end now."""
        for item in items:
            running = self._scripts.get(item.index)
            if running is not None and self._tg is not None:
                running.terminating = True
                self.create_task(self._kill(item.index), f"end_unrun.{item.index}")

    def _on_metadata(self, index: int, data: dict[str, Any]) -> None:
        self.model.update(index, duration_s=data.get("duration", 0.0), total=data.get("nimages", 0))

    def _on_progress(self, index: int, data: dict[str, Any]) -> None:
        self.model.update(index, done=data["done"], total=data["total"])
        if self._tg is not None:
            self.create_task(self._publish_queue(), "progress")

    # -- moving the queue on ---------------------------------------------------------------------

    async def _changed(self) -> None:
        await self._advance()
        await self._save()
        await self._publish_queue()
        self._publish_changed_scripts()

    async def _save(self) -> None:
        """Save what changed; a database that is away fails only the save, which is made again until it lands.

        The store saves everything changed since its last successful save, so the next save carries
        what this one could not write; meanwhile the queue goes on from its model in memory.
        """
        try:
            await self.store.save(self.model)
        except DatabaseError as exc:
            if not self._unsaved:
                self.log.error("queue_not_saved", reason=str(exc), retry_every_s=SAVE_RETRY_S)
            self._unsaved = True
            if self._tg is not None and (self._resave is None or self._resave.done()):
                self._resave = self.create_task(self._save_again(), "save_again")
            return
        if self._unsaved:
            self._unsaved = False
            self.log.warning("queue_saved_again", after="the database came back")

    async def _save_again(self) -> None:
        while self._unsaved:
            await self.clock.unscaled().sleep(SAVE_RETRY_S)
            with contextlib.suppress(DatabaseError):
                await self.store.save(self.model)
                self._unsaved = False
                self.log.warning("queue_saved_again", after="the database came back")

    async def _advance(self) -> None:
        async with self._advance_lock:
            if self.summary_state != State.ENABLED or not self.model.running:
                return
            top = self.model.queue[0] if self.model.queue else None
            await self._cancel_visits(top)
            if top is not None and top.script_state == ScriptState.CONFIGURED and not top.group_id:
                running = self._scripts.get(top.index)
                if running is not None:
                    group_id = _tai_iso(self.clock.tai())
                    try:
                        await running.remote.command("setGroupId", {"groupId": group_id}, timeout_s=5)
                    except ObsqError as exc:
                        self.log.warning("set_group_id_failed", index=top.index, reason=str(exc))
                        return
                    self.model.update(top.index, group_id=group_id)
                    metadata = {k: v for k, v in running.remote.event("metadata").get().items() if k in _VISIT_FIELDS}
                    await self.publish_event(
                        "nextVisit",
                        {"scriptSalIndex": top.index, "groupId": group_id, "startTime": self.clock.tai(), **metadata},
                    )
            item = self.model.next_to_run()
            if item is None:
                return
            self.model.start(item, self.clock.tai())
            try:
                await self._scripts[item.index].remote.command("run", timeout_s=10)
            except (ObsqError, KeyError) as exc:
                self.model.finished(item.index, ScriptState.FAILED, f"could not be started: {exc}", self.clock.tai())

    async def _cancel_visits(self, top: QueueItem | None) -> None:
        """A queued script given a group id that is no longer at the top loses it (nextVisitCanceled), as Rubin's."""
        for item in list(self.model.queue):
            if item is top or not item.group_id:
                continue
            running = self._scripts.get(item.index)
            if running is not None:
                try:
                    await running.remote.command("setGroupId", {"groupId": ""}, timeout_s=5)
                except ObsqError as exc:
                    self.log.warning("clear_group_id_failed", index=item.index, reason=str(exc))
            await self.publish_event("nextVisitCanceled", {"scriptSalIndex": item.index, "groupId": item.group_id})
            self.model.update(item.index, group_id="")

    async def _publish_queue(self, *, force: bool = False) -> None:
        """The `queue` event; `force`: sent even if nothing changed (showQueue, as Rubin's queue forces it)."""
        m = self.model
        items = [*m.queue, *([m.current] if m.current else []), *itertools.islice(m.history, RECENT_HISTORY)]
        summary = [
            {"index": i.index, "path": i.path, "state": i.script_state.name, "process": i.process_state.name,
             "checkpoint": i.last_checkpoint, "done": i.done, "total": i.total, "block": i.block_id,
             "reason": i.reason, "requeuedFrom": i.requeued_from, "duration": i.duration_s,
             "execution": i.block_execution or i.execution_id, "group": i.group_id,
             "area": "queue" if i in m.queue else "current" if i is m.current else "history"}
            for i in items
        ]  # fmt: skip
        await self.publish_event(
            "queue",
            {
                "enabled": self.summary_state == State.ENABLED,
                "running": m.running,
                "currentSalIndex": m.current.index if m.current else 0,
                "length": len(m.queue),
                "salIndices": [i.index for i in m.queue],
                "pastLength": len(m.history),
                "pastSalIndices": [i.index for i in itertools.islice(m.history, MAX_HISTORY)],
                "token": m.token,
                "items": json.dumps(summary),
            },
            force=force,
        )

    async def _publish_available(self, *, force: bool = False) -> None:
        await self.publish_event(
            "availableScripts",
            {"standard": ":".join(self.roots.available(True)), "external": ":".join(self.roots.available(False))},
            force=force,
        )

    # -- commands ---------------------------------------------------------------------------------

    async def _do_add(self, command: Command) -> str:
        d = command.data
        location = Location(d["location"])
        self.model.check_location(location, d["locationSalIndex"])  # refuse a bad location before starting anything
        cls = self.script_class(d["path"], d["isStandard"])  # an unknown script fails the add, as Rubin's does
        block_index = self._block_slot(d["block"], start=d["startBlock"], size=d["blockSize"])
        item = QueueItem(
            index=self.model.allocate(), path=d["path"], standard=d["isStandard"], config=d["config"], descr=d["descr"],
            added_tai=self.clock.tai(), block_id=d["block"], block_size=d["blockSize"], cmd_id=command.seq_num,
            execution_id=d["executionId"], block_index=block_index,
        )  # fmt: skip
        try:
            check_configuration(cls, d["path"], d["config"])
        except ValidationError as exc:  # Rubin's add completes and the script goes to history CONFIGURE_FAILED
            self.model.configure_failed(item, str(exc), self.clock.tai())
            await self._changed()
            return str(item.index)
        async with self.keep_alive(command, lambda: f"starting script {item.index} ({item.path})"):
            await self._start_process(item)
        # as Rubin's queue: the add completes once the process has started, and the script is seen LOADING
        self.model.add([item], location, d["locationSalIndex"])
        await self._changed()
        options = {"log_level": d["logLevel"], "pause": d["pauseCheckpoint"], "stop": d["stopCheckpoint"]}
        self.create_task(self._configure_added(item, **options), f"configure.{item.index}")
        return str(item.index)

    async def _configure_added(self, item: QueueItem, *, log_level: int, pause: str, stop: str) -> None:
        """Configure a script `add` queued; one that fails leaves the queue for history, CONFIGURE_FAILED."""
        try:
            await self._configure_started(item, log_level=log_level, pause=pause, stop=stop)
        except (ObsqError, TimeoutError) as exc:  # whatever it was, the script is not configured: said, not raised
            if any(queued is item for queued in self.model.queue):  # not stopped meanwhile
                self.model.update(item.index, script_state=ScriptState.CONFIGURE_FAILED)
                self.model.remove_queued(item.index, ProcessState.CONFIGURE_FAILED, str(exc), self.clock.tai())
            await self._kill(item.index)  # after: its end must not be taken for the reason
        await self._changed()

    def _block_slot(self, block: str, *, start: bool, size: int) -> int:
        """The place of a script added with block fields in its block (0 without one), as ts_scriptqueue counts it.

        `startBlock` opens the block (a new one of that id: `blockSize` scripts); the others join the
        block of that id opened last. A script for a block never opened, or beyond its declared size,
        is refused (ExpectedError) before anything starts.
        """
        if not block:
            return 0
        if start:
            self._blocks_by_add[block] = [size, 0]
        slot = self._blocks_by_add.get(block)
        if slot is None:
            raise ExpectedError(f"block {block!r} was never started: its first script comes with startBlock "
                                "(rule: a block starts before its scripts)")  # fmt: skip
        if slot[1] >= slot[0]:
            raise ExpectedError(f"block {block!r} declared {slot[0]} script{'s' * (slot[0] != 1)} and has them all "
                                "(rule: blockSize)")  # fmt: skip
        slot[1] += 1
        return slot[1] - 1

    async def _do_add_block(self, command: Command) -> str:
        d = command.data
        location = Location(d["location"])
        self.model.check_location(location, d["locationSalIndex"])
        override = load_yaml(d["override"], f"addBlock {d['id'][:64]}: override") if d["override"].strip() else {}
        if not isinstance(override, dict):
            raise ValidationError(f"addBlock {d['id']}: override must be a mapping")
        data, label = read_block(d["id"], self.block_folders_all())
        target = block_target(d["target"], f"addBlock {d['id'][:64]}: target", self.clock.tai())
        block = expand_block(data, label, override, self.check_script, target)
        execution = d["executionId"] or block_execution_id(block.program, self.clock.tai(), self.model.next_index)
        items = [
            QueueItem(
                index=self.model.allocate(), path=s.path, standard=s.standard, config=s.config, descr=block.name,
                block_id=block.program, block_index=i, block_size=len(block.scripts), block_execution=execution,
                failure_strategy=FailureStrategy(d["failureStrategy"]), added_tai=self.clock.tai(),
                execution_id=execution,
            )
            for i, s in enumerate(block.scripts)
        ]  # fmt: skip
        await self._launch_block(command, items, block.program)
        self.model.add(items, location, d["locationSalIndex"])
        await self._changed()
        return json.dumps([i.index for i in items])

    async def _launch_block(self, command: Command, items: list[QueueItem], program: str) -> None:
        """Start and configure a block's scripts together, saying INPROGRESS as they come; if one fails, none stays."""
        configured: list[int] = []

        async def launch(item: QueueItem) -> None:
            await self._launch(item, log_level=0, pause="", stop="")
            configured.append(item.index)

        def describe() -> str:
            return f"starting {len(items)} scripts of {program}: {len(configured)} configured"

        async with self.keep_alive(command, describe):
            results = await asyncio.gather(*(launch(i) for i in items), return_exceptions=True)
        failures = [(i, r) for i, r in zip(items, results, strict=True) if isinstance(r, BaseException)]
        if failures:
            for item in items:
                await self._kill(item.index)
            item, error = failures[0]
            raise ExpectedError(f"block {program} script {item.block_index + 1} ({item.path}): {error}")

    def block_folders_all(self) -> list[Path]:
        return block_folders(self.block_folders)

    async def _do_move(self, command: Command) -> None:
        d = command.data
        self.model.move(d["scriptSalIndex"], Location(d["location"]), d["locationSalIndex"])
        await self._changed()

    async def _do_requeue(self, command: Command) -> str:
        d = command.data
        location = Location(d["location"])
        self.model.check_location(location, d["locationSalIndex"])
        if d["restOfBlock"]:
            return await self._requeue_rest_of_block(command, location)
        item = self.model.requeue_copy(d["scriptSalIndex"])
        item.added_tai = self.clock.tai()
        async with self.keep_alive(command, lambda: f"starting script {item.index} ({item.path})"):
            await self._launch(item, log_level=0, pause="", stop="")
        self.model.add([item], location, d["locationSalIndex"])
        await self._changed()
        return str(item.index)

    async def _requeue_rest_of_block(self, command: Command, location: Location) -> str:
        """A script of a block and the later ones of its block not still queued, again: a new execution of the block."""
        d = command.data
        original = self.model.find(d["scriptSalIndex"])
        program = original.block_id if original is not None else ""
        execution = block_execution_id(program or "BLOCK-0", self.clock.tai(), self.model.next_index)
        items = self.model.requeue_block_rest(d["scriptSalIndex"], execution)
        for item in items:
            item.added_tai = self.clock.tai()
        await self._launch_block(command, items, program)
        self.model.add(items, location, d["locationSalIndex"])
        await self._changed()
        return json.dumps([i.index for i in items])

    async def _do_stop_scripts(self, command: Command) -> str:
        given = command.data["salIndices"]
        length = command.data.get("length")
        if length is not None and length > len(given):
            raise ExpectedError(f"stopScripts: length {length} is more than the {len(given)} salIndices given")
        # Rubin's clients send 400 slots, zero-terminated, and the number of valid ones in length
        indices = list(dict.fromkeys(i for i in given[: length if length is not None else len(given)] if i))
        if not indices:
            raise ExpectedError("stopScripts: no script index among the salIndices given (rule: one at least)")
        await command.in_progress(STOP_TIMEOUT_S + 5, "stopping")  # checked first: a refusal is never in progress
        now = self.clock.tai()
        queued = [i for i in indices if any(item.index == i for item in self.model.queue)]
        current = [i for i in indices if self.model.current is not None and self.model.current.index == i]
        # the queued ones leave the queue before the current one ends, so none of them can take its place
        for index in queued:
            self.model.remove_queued(index, ProcessState.TERMINATED, "stopped by the operator before it ran", now)
        for index in queued:
            await self._kill(index)
        for index in current:
            await self._stop_current(index, terminate=command.data["terminate"])
        await self._changed()
        others = [i for i in indices if i not in queued and i not in current]
        return f"stopped {[*current, *queued]}" + (f"; not queued or running: {others}" if others else "")

    async def _stop_current(self, index: int, *, terminate: bool) -> None:
        running = self._scripts.get(index)
        if running is None:
            return
        if not terminate:
            with contextlib.suppress(ObsqError):
                await running.remote.command("stop", timeout_s=5)
            with contextlib.suppress(TimeoutError):
                await self.clock.unscaled().wait_for(running.handle.wait(), STOP_TIMEOUT_S)
        if running.handle.returncode is None:
            running.terminating = True
            running.handle.terminate()

    async def _do_pause(self, command: Command) -> None:
        self.model.pause()
        await self._changed()

    async def _do_resume(self, command: Command) -> None:
        self.model.resume(self.clock.tai())
        await self._changed()

    async def _do_show_queue(self, command: Command) -> None:
        await self._publish_queue(force=True)

    async def _do_show_script(self, command: Command) -> None:
        item = self.model.find(command.data["scriptSalIndex"])
        if item is None:
            raise ExpectedError(f"no script {command.data['scriptSalIndex']} in queue, current slot or history")
        await self._publish_script(item, force=True)

    async def _publish_script(self, item: QueueItem, *, force: bool = False) -> None:
        """Rubin's `script` event for one script, now (showScript)."""
        await self.publish_event("script", self._script_data(item), force=force)

    def _queue_script_event(self, item: QueueItem) -> None:
        """A `script` event of the script as it is now, sent after every one queued before it (in order)."""
        data = self._script_data(item)
        self._published_scripts[item.index] = self._script_signature(item)
        previous = self._script_tail

        async def send() -> None:
            if previous is not None:
                with contextlib.suppress(Exception):
                    await previous
            await self.publish_event("script", data)

        self._script_tail = self.create_task(send(), f"script_event.{item.index}")

    def _script_data(self, item: QueueItem) -> dict[str, Any]:
        return {
            "cmdId": item.cmd_id, "scriptSalIndex": item.index, "path": item.path, "isStandard": item.standard,
            "timestampProcessStart": item.added_tai, "timestampConfigureStart": item.configure_start_tai,
            "timestampConfigureEnd": item.configure_end_tai, "timestampRunStart": item.run_start_tai,
            "timestampProcessEnd": item.end_tai, "processState": int(item.process_state.on_the_wire),
            "scriptState": int(item.script_state), "blockId": item.block_id, "scriptBlockIndex": item.block_index,
            "blockSize": item.block_size, "executionId": item.execution_id, "lastCheckpoint": item.last_checkpoint,
            "reason": item.reason, "requeuedFrom": item.requeued_from, "groupId": item.group_id,
        }  # fmt: skip

    def _publish_changed_scripts(self) -> None:
        """A `script` event for every script whose state, timestamps or anything else shown changed.

        Looked for among the scripts a change touched since the last look and the queued and current
        ones (this service also sets their fields itself): the cost does not grow with the history.
        """
        if self._tg is None:
            return
        m = self.model
        if m.token < self._published_token:
            self._published_token = -1  # another model (loaded at start): look at all of it once
        live = [*m.queue, *([m.current] if m.current else [])]
        seen = m.items() if self._published_token < 0 else [*reversed(m.changed_since(self._published_token)), *live]
        self._published_token = m.token
        for item in dict.fromkeys(seen):
            if self._published_scripts.get(item.index) != self._script_signature(item):
                self._queue_script_event(item)
        if len(self._published_scripts) > 2 * MAX_HISTORY + len(m.queue):  # now and then: forget what fell off
            for index in [i for i in self._published_scripts if m.find(i) is None]:
                del self._published_scripts[index]

    @staticmethod
    def _script_signature(item: QueueItem) -> tuple[Any, ...]:
        return (item.index, item.path, item.standard, item.added_tai, item.configure_start_tai,
                item.configure_end_tai, item.run_start_tai, item.end_tai, int(item.process_state),
                int(item.script_state), item.block_id, item.block_index, item.block_size, item.execution_id,
                item.last_checkpoint, item.reason, item.requeued_from, item.group_id)  # fmt: skip

    async def _do_show_available(self, command: Command) -> None:
        await self._publish_available(force=True)

    async def _do_show_schema(self, command: Command) -> None:
        cls = self.script_class(command.data["path"], command.data["isStandard"])
        schema = cls.get_schema()
        await self.publish_event(
            "configSchema",
            {"isStandard": command.data["isStandard"], "path": command.data["path"],
             "configSchema": yaml.safe_dump(schema, sort_keys=False) if schema else ""},
            force=True,
        )  # fmt: skip

    async def _publish_goodbye(self) -> None:
        for index in list(self._scripts):
            await self._kill(index)
        await super()._publish_goodbye()
