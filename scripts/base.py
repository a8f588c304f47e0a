"""BaseScript: a SAL script as a component on the bus (`Script:{index}`).

A script class says what it is (`description`), what configuration it takes (`get_schema`,
a JSON Schema; defaults are filled in), what it will do (`set_metadata`), and does it
(`run_script`, then `cleanup`). Its state follows SAL (states.py); `checkpoint(name)` is where
an operator's pause and stop patterns take effect. After a final state the process ends:
exit status 0 for DONE or STOPPED, 1 otherwise.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from obsq.csc.component import BaseComponent, Command, Remote
from obsq.csc.core.errors import ExpectedError, ValidationError
from obsq.csc.core.interface import make_validator, with_defaults
from obsq.csc.core.states import State
from obsq.csc.core.topics import ComponentId
from obsq.csc.core.yamltext import load_yaml
from obsq.scripts.states import ScriptState, ScriptStateMachine

#: How long a finished script keeps its process so the last events reach everyone (s of wall time).
FINAL_STATE_DELAY_S = 0.3
#: A script's heartbeat interval, as Rubin's BaseScript (components beat every second).
SCRIPT_HEARTBEAT_S = 5.0
#: Rubin's block execution id, e.g. BL123_O_20231205_000001: the dayObs and the execution's index in it.
_BLOCK_EXECUTION = re.compile(r"^BL[^_]*_O_(\d{8})_(\d+)$")
#: Rubin's metadata enums: MetadataCoordSys.NONE, MetadataRotSys.NONE, MetadataDome.EITHER.
_COORDSYS_NONE, _ROTSYS_NONE, _DOME_EITHER = 1, 1, 3
#: The states in which setCheckpoints is taken, as Rubin's BaseScript.
_SET_CHECKPOINTS_STATES = (ScriptState.UNCONFIGURED, ScriptState.CONFIGURED, ScriptState.RUNNING, ScriptState.PAUSED)
#: The configuration Rubin's BaseBlockScript gives its scripts (take_image_latiss,
#: make_latiss_calibrations...): the program and reason an image is taken for, and the test case
#: an execution belongs to (deprecated at Rubin, still in its schemas and configurations).
BLOCK_SCRIPT_PROPERTIES: dict[str, Any] = {
    "program": {"type": "string", "description": "program this script is run for, e.g. BLOCK-295"},
    "reason": {"type": "string", "description": "reason for running this script, e.g. daily_PTC"},
    "test_case": {
        "type": "object",
        "description": "the test case this execution belongs to (logged when the script runs)",
        "additionalProperties": False,
        "required": ["name", "execution", "version"],
        "properties": {
            "name": {"type": "string", "description": "test case, e.g. LVV-T2716"},
            "execution": {"type": "string", "description": "test case execution, e.g. LVV-E1234"},
            "version": {"type": "string", "description": "version of the test case"},
            "initial_step": {"type": "integer", "minimum": 1, "default": 1, "description": "first step"},
            "project": {"type": "string", "default": "LVV", "description": "project hosting the test cases"},
        },
    },
}


class BaseScript(BaseComponent):
    """Subclass it, set `description`, override `get_schema`, `configure`, `set_metadata`, `run_script`."""

    description = ""
    help = ""

    def __init__(self, *, index: int, **kwargs: Any) -> None:
        if index <= 0:
            raise ValueError("a script's index must be > 0 (index 0 would answer every script's commands)")
        kwargs.setdefault("heartbeat_s", SCRIPT_HEARTBEAT_S)
        super().__init__("Script", index=index, **kwargs)
        self.machine = ScriptStateMachine()
        self.group_id = ""
        self.block_id = ""
        self.execution_id = ""
        self.config: dict[str, Any] = {}
        self.metadata: dict[str, Any] = {}
        self.last_checkpoint = ""
        self.num_checkpoints = 0
        self._pause_re = ""
        self._stop_re = ""
        self._resume = asyncio.Event()
        self._run_task: asyncio.Task[None] | None = None
        self._stop_requested = False  # a cancellation without it is the process being torn down
        self._remotes: list[Remote] = []
        self.exit_code: int | None = None
        #: set once the script is in a final state (its process then has nothing left to do but end)
        self.ended = asyncio.Event()
        for name, handler in (
            ("configure", self._do_configure),
            ("setGroupId", self._do_set_group_id),
            ("run", self._do_run),
            ("resume", self._do_resume),
            ("stop", self._do_stop),
            ("setCheckpoints", self._do_set_checkpoints),
        ):
            self.register_command(name, handler, require_enabled=False)

    # -- what a script class provides -------------------------------------------------------

    @classmethod
    def get_schema(cls) -> dict[str, Any] | None:
        """The configuration's JSON Schema, or None if the script takes no configuration."""
        return None

    async def configure(self, config: dict[str, Any]) -> None:
        """Take the validated configuration (defaults filled in); raise ExpectedError to refuse it."""

    def set_metadata(self, metadata: dict[str, Any]) -> None:
        """Fill in estimates: duration (s), nimages, filters, instrument, survey."""

    async def run_script(self) -> None:
        """Do the work, calling `checkpoint` at each step (SAL's `run`)."""
        raise NotImplementedError

    async def cleanup(self) -> None:
        """Runs after `run_script` ends for any reason (look at `self.state` to know which)."""

    # -- helpers for scripts ---------------------------------------------------------------

    @property
    def state(self) -> ScriptState:
        return self.machine.state

    def remote(self, component: str, *, telemetry: bool = False) -> Remote:
        """A Remote to `component`, started with the script and closed with it."""
        remote = Remote(
            self.bus, ComponentId.parse(component), clock=self.clock, root=self.root, identity=self.identity,
            telemetry=telemetry,
        )  # fmt: skip
        self._remotes.append(remote)
        return remote

    async def start_remotes(self) -> None:
        for remote in self._remotes:
            await remote.start()

    async def assert_enabled(self, *remotes: Remote, timeout_s: float = 10.0) -> None:
        """Fail with the component's name and state unless each is ENABLED."""
        for remote in remotes:
            try:
                data = await remote.event("summaryState").aget(timeout_s=timeout_s)
            except TimeoutError:
                raise ExpectedError(f"{remote.id} is not running (no summaryState within {timeout_s:g} s)") from None
            state = State(data["summaryState"])
            if state != State.ENABLED:
                raise ExpectedError(f"{remote.id} is {state.name}, not ENABLED")

    async def checkpoint(self, name: str = "") -> None:
        """Mark progress; pause or stop here if an operator's pattern matches `name`."""
        self.machine.require(ScriptState.RUNNING, action="checkpoint")
        self.num_checkpoints += 1
        self.last_checkpoint = name
        if self._stop_re and re.fullmatch(self._stop_re, name):
            self.log.info("stop_at_checkpoint", checkpoint=name)
            self._stop_requested = True
            raise asyncio.CancelledError
        if self._pause_re and re.fullmatch(self._pause_re, name):
            self._resume.clear()
            await self._set_state(ScriptState.PAUSED, f"paused at {name}")
            await self._resume.wait()
            await self._set_state(ScriptState.RUNNING)
        else:
            await self._publish_state()

    async def progress(self, done: int, total: int) -> None:
        await self.publish_event("progress", {"done": done, "total": total})

    def close(self) -> None:
        """End the script (SIGTERM, an operator's terminate): a running one stops and cleans up first."""
        self._stop_requested = True
        super().close()

    def _may_cancel_again(self, task: asyncio.Task[Any]) -> bool:
        """Not a script's run while it stops and cleans up: only once it has reached a final state."""
        return task is not self._run_task or self.ended.is_set()

    # -- state ----------------------------------------------------------------------------

    async def _publish_initial_events(self) -> None:
        await super()._publish_initial_events()
        await self.publish_event(
            "description",
            {"classname": type(self).__name__, "description": self.description, "help": self.help, "remotes": ""},
        )
        await self._publish_state()

    async def _publish_state(self) -> None:
        await self.publish_event(
            "state",
            {
                "state": int(self.machine.state),
                "reason": self.machine.reason,
                "groupId": self.group_id,
                "lastCheckpoint": self.last_checkpoint,
                "numCheckpoints": self.num_checkpoints,
                "blockId": self.block_id,
                **block_execution(self.block_id),
                "executionId": self.execution_id,
            },
        )

    async def _set_state(self, state: ScriptState, reason: str = "") -> None:
        self.machine.to(state, reason)
        self.log.info("script_state", state=state.name, reason=reason)
        await self._publish_state()
        if state.is_final:
            self.exit_code = 0 if state in (ScriptState.DONE, ScriptState.STOPPED) else 1
            self.ended.set()
            self.create_task(self._finish(), "finish")

    async def _finish(self) -> None:
        for remote in self._remotes:
            await remote.close()
        await self.clock.unscaled().sleep(FINAL_STATE_DELAY_S)
        self.close()

    # -- commands ---------------------------------------------------------------------------

    async def _do_configure(self, command: Command) -> str:
        self.machine.require(ScriptState.UNCONFIGURED, action="configure")
        data = command.data
        if data["logLevel"]:
            self._log_level = data["logLevel"]
        self.block_id = data["blockId"]
        self.execution_id = data.get("executionId", "")
        try:
            self.config = self.validate_configuration(data["config"])
            self._pause_re, self._stop_re = _pattern(data["pauseCheckpoint"]), _pattern(data["stopCheckpoint"])
            await self.configure(self.config)
            metadata: dict[str, Any] = {
                "duration": 0.0, "nimages": 0, "filters": "", "instrument": "", "survey": "", "totalCheckpoints": 0,
                "coordinateSystem": _COORDSYS_NONE, "position": [0.0, 0.0], "rotationSystem": _ROTSYS_NONE,
                "cameraAngle": 0.0, "dome": _DOME_EITHER,
            }  # fmt: skip
            self.set_metadata(metadata)
            self.metadata = metadata
            await self.publish_event("metadata", metadata)
            await self.publish_event("checkpoints", {"pause": self._pause_re, "stop": self._stop_re})
        except Exception as exc:
            reason = str(exc) if isinstance(exc, ExpectedError) else f"{type(exc).__name__}: {exc}"
            await self._set_state(ScriptState.CONFIGURE_FAILED, reason)
            raise ExpectedError(reason) from exc
        await self._set_state(ScriptState.CONFIGURED)
        return "configured"

    @classmethod
    def validate_configuration(cls, text: str) -> dict[str, Any]:
        """Parse the YAML text and validate it against the schema, defaults filled in."""
        config = load_yaml(text, f"{cls.__name__} configuration") if text.strip() else {}
        if config is None:
            config = {}
        if not isinstance(config, dict):
            raise ValidationError(f"{cls.__name__} configuration must be a mapping, not {type(config).__name__}")
        schema = cls.get_schema()
        if schema is None:
            if config:
                raise ValidationError(f"{cls.__name__} takes no configuration, got: {', '.join(map(str, config))}")
            return {}
        config = with_defaults(schema, config)
        make_validator(schema).validate_all(f"{cls.__name__} configuration", config)
        return config

    async def _do_set_group_id(self, command: Command) -> None:
        self.machine.require(ScriptState.CONFIGURED, action="setGroupId")
        self.group_id = command.data["groupId"]
        await self._publish_state()

    async def _do_run(self, command: Command) -> str:
        self.machine.require(ScriptState.CONFIGURED, action="run")
        if not self.group_id:
            raise ExpectedError("run needs a group id (setGroupId first)")
        test_case = self.config.get("test_case")
        if test_case:
            self.log.info("test_case", **test_case)
        await self._set_state(ScriptState.RUNNING)
        self._run_task = self.create_task(self._run_and_end(), "run")
        return "running"

    async def _run_and_end(self) -> None:
        try:
            await self.run_script()
            ending, final, reason = ScriptState.ENDING, ScriptState.DONE, ""
        except asyncio.CancelledError:
            if not self._stop_requested:
                raise  # torn down from outside (the process is being killed): no cleanup, no more states
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()  # the stop was handled here; cleanup must still be able to wait
            ending, final, reason = ScriptState.STOPPING, ScriptState.STOPPED, "stopped"
        except Exception as exc:
            reason = str(exc) if isinstance(exc, ExpectedError) else f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, ExpectedError):
                self.log.exception("script_failed")
            ending, final = ScriptState.FAILING, ScriptState.FAILED
        await self._set_state(ending, reason)
        try:
            await self.cleanup()
        except Exception as exc:
            self.log.exception("cleanup_failed")
            final, reason = ScriptState.FAILED, f"cleanup failed: {exc}"
        await self._set_state(final, reason)

    async def _do_resume(self, command: Command) -> None:
        self.machine.require(ScriptState.PAUSED, action="resume")
        self._resume.set()

    async def _do_stop(self, command: Command) -> str:
        if self.machine.state.is_final or self.machine.state in (ScriptState.STOPPING, ScriptState.ENDING):
            return "already ending"
        if self._run_task is not None and not self._run_task.done():
            self._stop_requested = True
            self._run_task.cancel()
            return "stopping"
        await self._set_state(ScriptState.STOPPING, "stopped before running")
        await self._set_state(ScriptState.STOPPED, "stopped before running")
        return "stopped"

    async def _do_set_checkpoints(self, command: Command) -> None:
        self.machine.require(*_SET_CHECKPOINTS_STATES, action="setCheckpoints")
        self._pause_re, self._stop_re = _pattern(command.data["pause"]), _pattern(command.data["stop"])
        await self.publish_event("checkpoints", {"pause": self._pause_re, "stop": self._stop_re})


def block_execution(block_id: str) -> dict[str, int]:
    """The dayObs and blockExecution of a Rubin block execution id (BL123_O_20231205_000001); 0 and 0 otherwise."""
    match = _BLOCK_EXECUTION.match(block_id)
    return {"dayObs": int(match[1]), "blockExecution": int(match[2])} if match else {"dayObs": 0, "blockExecution": 0}


def _pattern(text: str) -> str:
    """A checkpoint pattern, checked to be a valid regular expression."""
    try:
        re.compile(text)
    except re.error as exc:
        raise ExpectedError(f"checkpoint pattern {text!r} is not a valid regular expression: {exc}") from None
    return text
