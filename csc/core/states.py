"""The CSC summary-state machine, as a data table.

Invariants:
- the state only changes through `SummaryStateMachine.handle` (a generic command) or
  `SummaryStateMachine.fault`; the table below is the one definition of what is allowed;
- FAULT is entered only through `fault()`, and left only through `standby`;
- OFFLINE is final for a running process (`exitControl` ends it).

State values follow SAL (`lsst.ts.xml.sal_enums.State`).
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass

from obsq.csc.core.errors import StateTransitionError


class State(enum.IntEnum):
    """Summary state, numbered as in SAL."""

    DISABLED = 1
    ENABLED = 2
    FAULT = 3
    OFFLINE = 4
    STANDBY = 5


#: The generic state-transition commands, in SAL's names.
TRANSITION_COMMANDS: tuple[str, ...] = ("start", "enable", "disable", "standby", "exitControl")

#: (state, command) -> new state. Every pair not listed is refused.
TRANSITIONS: dict[tuple[State, str], State] = {
    (State.STANDBY, "start"): State.DISABLED,
    (State.DISABLED, "enable"): State.ENABLED,
    (State.ENABLED, "disable"): State.DISABLED,
    (State.DISABLED, "standby"): State.STANDBY,
    (State.FAULT, "standby"): State.STANDBY,
    (State.STANDBY, "exitControl"): State.OFFLINE,
}


#: Where each transition command leads, whatever the state it is sent in.
TARGETS: dict[str, State] = {command: new for (_, command), new in TRANSITIONS.items()}


def what_to_send(state: State, target: State) -> str:
    """Words for the commands that bring a component from `state` to `target` ("send start, then enable")."""
    try:
        path = command_path(state, target)
    except ValueError:  # OFFLINE: the process is ending
        return "the component is going OFFLINE"
    return f"send {', then '.join(path)}" if path else ""


@dataclass(frozen=True)
class Transition:
    """A state change the machine decided; the service carries it out."""

    command: str
    old: State
    new: State


class SummaryStateMachine:
    """The summary state of one component; synchronous and free of I/O."""

    def __init__(self, initial: State = State.STANDBY) -> None:
        if initial in (State.FAULT, State.OFFLINE):
            raise ValueError(f"initial state must not be {initial.name}")
        self._state: State = initial

    @property
    def state(self) -> State:
        return self._state

    def check(self, command: str) -> State:
        """Return the state `command` would lead to, or raise StateTransitionError."""
        if command not in TRANSITION_COMMANDS:
            raise ValueError(f"{command!r} is not a state-transition command")
        try:
            return TRANSITIONS[(self._state, command)]
        except KeyError:
            first = command_path(self._state, TARGETS[command])[:-1] if self._state != State.OFFLINE else []
            hint = f": send {', then '.join(first)} first" if first else ""
            raise StateTransitionError(f"{command} not allowed in state {self._state.name}{hint}") from None

    def handle(self, command: str) -> Transition:
        """Apply a transition command; raise StateTransitionError if the table forbids it."""
        new = self.check(command)
        transition = Transition(command, self._state, new)
        self._state = new
        return transition

    def revert(self, transition: Transition) -> None:
        """Undo `transition` (its after-hook failed); only the latest transition may be undone."""
        if self._state != transition.new:
            raise ValueError(f"cannot revert {transition}: state is now {self._state.name}")
        self._state = transition.old

    def fault(self) -> Transition | None:
        """Go to FAULT; None if already there (or OFFLINE, which is final)."""
        if self._state in (State.FAULT, State.OFFLINE):
            return None
        transition = Transition("fault", self._state, State.FAULT)
        self._state = State.FAULT
        return transition


def command_path(start: State, target: State) -> list[str]:
    """The shortest list of commands that takes a component from `start` to `target`.

    >>> command_path(State.STANDBY, State.ENABLED)
    ['start', 'enable']
    >>> command_path(State.FAULT, State.DISABLED)
    ['standby', 'start']
    """
    if target == State.FAULT:
        raise ValueError("FAULT cannot be commanded; it is entered by fault()")
    paths: dict[State, list[str]] = {start: []}
    frontier = deque([start])
    while frontier:
        state = frontier.popleft()
        if state == target:
            return paths[state]
        for (source, command), new in TRANSITIONS.items():
            if source == state and new not in paths:
                paths[new] = [*paths[state], command]
                frontier.append(new)
    raise ValueError(f"no command path from {start.name} to {target.name}")
