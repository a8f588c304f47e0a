"""The summary-state table, every (state, command) pair."""

from __future__ import annotations

import itertools

import pytest

from obsq.csc.core.errors import StateTransitionError
from obsq.csc.core.states import TRANSITION_COMMANDS, State, SummaryStateMachine, command_path, what_to_send

# The expected table, written out independently of TRANSITIONS (SAL's rules, rubin-facts §1.2).
EXPECTED = {
    (State.STANDBY, "start"): State.DISABLED,
    (State.DISABLED, "enable"): State.ENABLED,
    (State.ENABLED, "disable"): State.DISABLED,
    (State.DISABLED, "standby"): State.STANDBY,
    (State.FAULT, "standby"): State.STANDBY,
    (State.STANDBY, "exitControl"): State.OFFLINE,
}


def machine_in(state: State) -> SummaryStateMachine:
    machine = SummaryStateMachine(State.STANDBY)
    if state == State.FAULT:
        machine.fault()
    elif state == State.OFFLINE:
        machine.handle("exitControl")
    else:
        for command in command_path(State.STANDBY, state):
            machine.handle(command)
    assert machine.state == state
    return machine


@pytest.mark.parametrize(("state", "command"), list(itertools.product(State, TRANSITION_COMMANDS)))
def test_every_state_command_pair(state: State, command: str) -> None:
    machine = machine_in(state)
    expected = EXPECTED.get((state, command))
    if expected is None:
        with pytest.raises(StateTransitionError, match=f"{command} not allowed in state {state.name}"):
            machine.handle(command)
        assert machine.state == state
    else:
        transition = machine.handle(command)
        assert (transition.old, transition.new, machine.state) == (state, expected, expected)


def test_values_are_sals() -> None:
    assert [(s.name, s.value) for s in State] == [
        ("DISABLED", 1),
        ("ENABLED", 2),
        ("FAULT", 3),
        ("OFFLINE", 4),
        ("STANDBY", 5),
    ]


@pytest.mark.parametrize("state", [State.STANDBY, State.DISABLED, State.ENABLED])
def test_fault_from_any_running_state_and_only_standby_leaves(state: State) -> None:
    machine = machine_in(state)
    assert machine.fault() is not None
    assert machine.fault() is None  # re-entrant
    for command in ("start", "enable", "disable", "exitControl"):
        with pytest.raises(StateTransitionError):
            machine.handle(command)
    assert machine.handle("standby").new == State.STANDBY


def test_revert_undoes_only_the_latest() -> None:
    machine = SummaryStateMachine()
    transition = machine.handle("start")
    machine.revert(transition)
    assert machine.state == State.STANDBY
    with pytest.raises(ValueError):
        machine.revert(transition)


def test_initial_state_cannot_be_fault_or_offline() -> None:
    for state in (State.FAULT, State.OFFLINE):
        with pytest.raises(ValueError):
            SummaryStateMachine(state)


def test_command_paths() -> None:
    assert command_path(State.ENABLED, State.STANDBY) == ["disable", "standby"]
    assert command_path(State.FAULT, State.ENABLED) == ["standby", "start", "enable"]
    assert command_path(State.STANDBY, State.OFFLINE) == ["exitControl"]
    with pytest.raises(ValueError):
        command_path(State.STANDBY, State.FAULT)
    with pytest.raises(ValueError):
        command_path(State.OFFLINE, State.STANDBY)


def test_a_refused_transition_says_what_to_send_first() -> None:
    machine = SummaryStateMachine(State.STANDBY)
    with pytest.raises(StateTransitionError, match=r"enable not allowed in state STANDBY: send start first$"):
        machine.check("enable")
    assert what_to_send(State.FAULT, State.ENABLED) == "send standby, then start, then enable"
    assert what_to_send(State.DISABLED, State.ENABLED) == "send enable"
