"""SAL script states and the rules for moving between them — pure.

Invariants: a script is configured once (UNCONFIGURED -> CONFIGURED or CONFIGURE_FAILED);
it runs once, only when CONFIGURED with a group id; RUNNING may pause at a checkpoint and
resume; it ends through ENDING, STOPPING or FAILING into DONE, STOPPED or FAILED, after which
nothing changes. Only BaseScript changes the state, through `ScriptStateMachine`.
"""

from __future__ import annotations

from obsq.csc.core.enums import ScriptState
from obsq.csc.core.errors import ExpectedError

__all__ = ["ScriptState", "ScriptStateMachine"]


_ALLOWED: dict[ScriptState, set[ScriptState]] = {
    ScriptState.UNCONFIGURED: {ScriptState.CONFIGURED, ScriptState.CONFIGURE_FAILED, ScriptState.STOPPING},
    ScriptState.CONFIGURED: {ScriptState.RUNNING, ScriptState.STOPPING},
    ScriptState.RUNNING: {ScriptState.PAUSED, ScriptState.ENDING, ScriptState.STOPPING, ScriptState.FAILING},
    ScriptState.PAUSED: {ScriptState.RUNNING, ScriptState.STOPPING, ScriptState.FAILING},
    ScriptState.ENDING: {ScriptState.DONE, ScriptState.FAILED},
    ScriptState.STOPPING: {ScriptState.STOPPED, ScriptState.FAILED},
    ScriptState.FAILING: {ScriptState.FAILED},
}


class ScriptStateMachine:
    """The state of one script."""

    def __init__(self) -> None:
        self.state = ScriptState.UNCONFIGURED
        self.reason = ""

    def to(self, new: ScriptState, reason: str = "") -> None:
        if new not in _ALLOWED.get(self.state, set()):
            raise ExpectedError(f"a script cannot go from {self.state.name} to {new.name}")
        self.state = new
        if reason:
            self.reason = reason

    def require(self, *states: ScriptState, action: str) -> None:
        if self.state not in states:
            allowed = " or ".join(s.name for s in states)
            raise ExpectedError(f"{action} not allowed in script state {self.state.name} (only {allowed})")
