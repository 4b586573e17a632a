"""The transition table, enumerated: every state has its moves, every state but the last can
be destroyed, every action's start and end are moves the table allows, and the validators'
verdicts agree with the table. The workflow itself logs any move the table lacks, which the
autouse `no_illegal_transitions` fixture turns into a failure of whichever test made it."""

from __future__ import annotations

import pytest

from core.contracts.states import BILLED_STATES, UP_STATES, MachineState
from workflows.machine.transitions import (
    ALLOWED,
    IN_PROGRESS,
    STARTS_FROM,
    TARGET,
    Action,
    in_progress,
    is_allowed,
    is_joining,
    rejection,
)

S = MachineState


def reachable(start: MachineState) -> set[MachineState]:
    seen, todo = {start}, [start]
    while todo:
        for after in ALLOWED[todo.pop()]:
            if after not in seen:
                seen.add(after)
                todo.append(after)
    return seen


def test_every_state_has_its_moves_and_is_reachable_from_a_create() -> None:
    assert set(ALLOWED) == set(S)
    assert reachable(S.STARTING) == set(S)


@pytest.mark.parametrize("state", list(S), ids=str)
def test_every_state_but_the_last_leads_to_destroyed(state: MachineState) -> None:
    if state is S.DESTROYED:
        assert ALLOWED[state] == frozenset()
        return
    assert S.DESTROYED in reachable(state)
    if state is not S.DESTROYING:
        assert is_allowed(state, S.DESTROYING), f"{state} cannot be destroyed"


@pytest.mark.parametrize("action", [a for a in Action if a in IN_PROGRESS], ids=str)
def test_each_action_starts_and_ends_with_moves_the_table_allows(action: Action) -> None:
    for state in STARTS_FROM[action]:
        running = in_progress(action, state)
        assert running is not None
        if state is not running:  # a repeat joins the one under way
            assert is_allowed(state, running), f"{action} from {state}"
        assert is_allowed(running, TARGET[action]), f"{action} never reaches {TARGET[action]}"


@pytest.mark.parametrize("action", list(Action), ids=str)
@pytest.mark.parametrize("state", list(S), ids=str)
def test_validators_agree_with_the_table(action: Action, state: MachineState) -> None:
    problem = rejection(action, state)
    accepted = state in STARTS_FROM[action] or is_joining(action, state)
    assert (problem is None) == accepted
    if problem is not None:
        assert problem.startswith("machine "), problem  # said to the user about the machine
    running = in_progress(action, state)
    if accepted and running is not None and not is_joining(action, state):
        assert is_allowed(state, running)


def test_state_groups() -> None:
    assert {s for s in S if s.is_up()} == UP_STATES == {S.RUNNING, S.IDLE}
    assert {s for s in S if s.keeps_idleness()} == UP_STATES | {S.HIBERNATING, S.PAUSING}
    assert {s for s in S if s.bills()} == BILLED_STATES
    assert UP_STATES <= BILLED_STATES
    for quiet in (S.STOPPED, S.PAUSED, S.HIBERNATED, S.DELETED, S.DESTROYED):
        assert not quiet.bills()
    assert {s for s in S if s.is_ending()} == {S.DESTROYING, S.DESTROYED}
