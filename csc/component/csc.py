"""BaseCsc: a component service — the summary-state machine and its generic commands and events.

The transition rules are data in `obsq.csc.core.states`; this class only carries out the
effects (configuration on `start`, the hooks, the events) around them.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from obsq.csc.component.base import BaseComponent, Command
from obsq.csc.config import AppliedConfiguration, available_configurations, default_config_root, load_configuration
from obsq.csc.core.errors import (
    ExpectedError,
)
from obsq.csc.core.states import State, SummaryStateMachine, Transition, what_to_send


class BaseCsc(BaseComponent):
    """A component service: the summary-state machine and its generic commands and events.

    Subclasses register their own commands with `register_command` and override the hooks
    `configure`, `before_transition` and `handle_summary_state`.
    """

    valid_simulation_modes: tuple[int, ...] = (0, 1)
    #: The fault codes that mean the device failed or stopped answering (deviceConnection: not connected).
    device_fault_codes: frozenset[int] = frozenset()

    def __init__(
        self,
        name: str,
        *,
        initial_state: State = State.STANDBY,
        override: str = "",
        simulation_mode: int = 0,
        config_root: Path | None = None,
        site: str | None = None,
        **kwargs: Any,
    ) -> None:
        if simulation_mode not in self.valid_simulation_modes:
            raise ValueError(f"simulation mode {simulation_mode} not in {self.valid_simulation_modes}")
        super().__init__(name, **kwargs)
        self.simulation_mode = simulation_mode
        self.config_root = config_root if config_root is not None else default_config_root()
        self.site = site or os.environ.get("OBSQ_SITE")
        self.config: AppliedConfiguration | None = None
        self._initial_state = initial_state
        self._initial_override = override
        self._machine = SummaryStateMachine()
        self._state_lock = asyncio.Lock()
        self._faulting = False
        for command in ("start", "enable", "disable", "standby", "exitControl"):
            self.register_command(command, self._do_transition, require_enabled=False)

    @property
    def summary_state(self) -> State:
        return self._machine.state

    def command_allowed(self, name: str) -> None:
        self.assert_enabled(name)

    def assert_enabled(self, action: str = "") -> None:
        """Raise ExpectedError unless ENABLED (in FAULT, with the error code and report)."""
        state = self.summary_state
        if state == State.ENABLED:
            return
        what = f"{action} not allowed" if action else "not allowed"
        how = what_to_send(state, State.ENABLED)
        if state == State.FAULT:
            error = self._events.get("errorCode", {})
            raise ExpectedError(
                f"{what} in state FAULT (errorCode={error.get('errorCode')}: {error.get('errorReport', '')});"
                f" to recover, {how}"
            )
        raise ExpectedError(f"{what} in state {state.name}; the component must be ENABLED: {how}")

    async def fault(self, code: int, report: str, traceback: str = "") -> None:
        """Go to FAULT: errorCode, summaryState, then `handle_summary_state` to make hardware safe."""
        if self._faulting:
            return
        self._faulting = True
        try:
            if self._machine.fault() is None:
                return
            self.log.critical("fault", error_code=code, report=report)
            await self.publish_event(
                "errorCode", {"errorCode": code, "errorReport": report, "traceback": traceback}, force=True
            )
            await self.publish_event("summaryState", {"summaryState": int(State.FAULT)})
            if code in self.device_fault_codes:
                await self._publish_device(connected=False, report=report)
            try:
                await self.handle_summary_state()
            except Exception:
                self.log.exception("handle_summary_state_failed_in_fault")
        finally:
            self._faulting = False

    # -- hooks for subclasses -----------------------------------------------------------

    def devices(self) -> str | None:
        """The hardware this component drives ("simulated", or its addresses); None: it drives none."""
        return None

    async def configure(self, config: dict[str, Any]) -> None:
        """Apply a validated configuration (called by `start`, before the state changes)."""

    async def before_transition(self, transition: Transition) -> None:
        """Veto a state change by raising ExpectedError (e.g. refuse STANDBY while cooling down)."""

    async def handle_summary_state(self) -> None:
        """React to the new summary state (connect hardware, start or stop loops, make safe)."""

    # -- internals ----------------------------------------------------------------------

    async def _publish_initial_events(self) -> None:
        await super()._publish_initial_events()
        epoch = float(getattr(self.clock, "epoch_tai", 0.0))
        await self.publish_event("simulationMode", {"mode": self.simulation_mode, "clockSpeed": self.clock.speed,
                                                    "clockEpoch": epoch})  # fmt: skip
        await self._publish_device(connected=False, report="")
        await self.publish_event("errorCode", {"errorCode": 0, "errorReport": "", "traceback": ""})
        await self.publish_event("summaryState", {"summaryState": int(self.summary_state)})
        await self._publish_configurations_available()

    async def _publish_device(self, *, connected: bool, report: str) -> None:
        devices = self.devices()
        if devices is not None:
            await self.publish_event(
                "deviceConnection", {"devices": devices[:2000], "connected": connected, "report": report[:4000]}
            )

    async def _publish_configurations_available(self) -> None:
        """The overrides `start` may name, as Rubin's configurable CSCs say at start-up and in STANDBY."""
        try:
            available = available_configurations(self.interface, config_root=self.config_root)
        except OSError as exc:
            self.log.warning("configurations_unreadable", error=str(exc))
            return
        await self.publish_event("configurationsAvailable", {
            "overrides": ",".join(available.overrides), "version": self.version,
            "url": available.url, "schemaVersion": available.schema_version,
        })  # fmt: skip

    async def _on_started(self) -> None:
        path = {
            State.STANDBY: [],
            State.DISABLED: ["start"],
            State.ENABLED: ["start", "enable"],
        }.get(self._initial_state)
        if path is None:
            raise ValueError(f"initial state must be STANDBY, DISABLED or ENABLED, not {self._initial_state.name}")
        for name in path:
            async with self._state_lock:
                await self._transition(name, self._initial_override if name == "start" else "")

    async def _do_transition(self, command: Command) -> None:
        async with self._state_lock:
            await self._transition(command.name, command.data.get("configurationOverride", ""))
        if self.summary_state == State.OFFLINE:
            self._close_after_ack = True

    async def _transition(self, name: str, override: str = "") -> None:
        self._machine.check(name)
        if name == "start":
            config = load_configuration(self.interface, config_root=self.config_root, site=self.site, override=override)
            await self.configure(config.values)
            self.config = config
        transition = Transition(name, self._machine.state, self._machine.check(name))
        await self.before_transition(transition)
        self._machine.handle(name)
        try:
            await self.handle_summary_state()
        except Exception as exc:
            if self._machine.state == State.FAULT and transition.new != State.FAULT:
                # The hook faulted the component itself (its device failed): FAULT stands, there is nothing to undo.
                raise ExpectedError(f"{name} failed and the component went to FAULT: {exc}") from exc
            self._machine.revert(transition)
            self.log.exception("transition_reverted", command=name)
            raise ExpectedError(f"{name} failed and the state was reverted to {transition.old.name}: {exc}") from exc
        if name == "start":
            await self._publish_device(connected=True, report="")
        if name == "start" and self.config is not None:
            await self.publish_event(
                "configurationApplied",
                {
                    "configurations": ",".join(self.config.files),
                    "version": self.version,
                    "url": self.config.url,
                    "schemaVersion": self.config.schema_version,
                    "otherInfo": "",
                },
                force=True,
            )
        self.log.info("state_changed", command=name, old=transition.old.name, new=transition.new.name)
        if transition.new != State.FAULT:
            await self.publish_event("errorCode", {"errorCode": 0, "errorReport": "", "traceback": ""})
        await self.publish_event("summaryState", {"summaryState": int(transition.new)})
        if transition.new == State.STANDBY:
            await self._publish_configurations_available()
