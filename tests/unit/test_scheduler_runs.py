"""The Scheduler's run policy, pure: blocks in order, a failure drops the rest, the safe blocks always run."""

from __future__ import annotations

import json

from obsq.csc.scheduler.runs import BlockState, PlannedBlock, Run, execution_id
from obsq.scripts.states import ScriptState

TAI = 1_796_000_000.0


def weekly() -> Run:
    blocks = [PlannedBlock(b, b, execution_id(b, TAI, f"weekly|0|{i}"), safe=b == "BLOCK-310")
              for i, b in enumerate(("BLOCK-309", "BLOCK-295", "BLOCK-310"))]  # fmt: skip
    return Run("weekly", 0.0, blocks)


def event(index: int, state: ScriptState, process: int = 3, execution: str = "", reason: str = "") -> dict[str, object]:
    return {"scriptSalIndex": index, "scriptState": int(state), "processState": process, "path": "p.py",
            "reason": reason, "executionId": execution}  # fmt: skip


def test_execution_ids_are_rubins_form_and_the_same_for_the_same_run() -> None:
    run, again = weekly(), weekly()
    assert [b.execution for b in run.blocks] == [b.execution for b in again.blocks]
    assert run.blocks[1].execution.startswith("BL295_O_2026")
    assert len({b.execution for b in run.blocks}) == 3


def test_a_run_that_goes_well_adds_in_order_and_completes() -> None:
    run = weekly()
    for position, indices in ((0, [1, 2]), (1, [3]), (2, [4])):
        assert run.next_to_add() == position
        run.queued(position, indices)
    assert run.next_to_add() is None
    for index in (1, 2, 3, 4):
        run.script(event(index, ScriptState.DONE, process=4))
    assert run.over
    assert run.outcome() == "COMPLETED"


def test_a_failure_stops_the_rest_once_and_the_safe_block_is_still_added() -> None:
    run = weekly()
    run.queued(run.next_to_add() or 0, [1, 2])
    _, effects = run.script(event(1, ScriptState.FAILED, reason="ATDome is STANDBY"))
    assert effects.stop == (2,)
    assert effects.resume  # the queue paused on the failure: BLOCK-310, added next, must run
    assert run.next_to_add() == 2  # BLOCK-295 dropped, BLOCK-310 next
    assert run.blocks[1].state == BlockState.DROPPED
    run.queued(2, [3])
    _, again = run.script(event(2, ScriptState.STOPPED, process=7))
    assert again.stop == ()  # asked once
    assert not again.resume
    run.script(event(3, ScriptState.DONE, process=4))
    assert run.over
    assert run.outcome() == ("ERROR: script 1 (p.py) of BLOCK-309 FAILED: ATDome is STANDBY; not completed: BLOCK-295;"
                             " safe block BLOCK-310 COMPLETED (the site is safe)")  # fmt: skip


def test_a_failure_with_the_safe_block_queued_resumes_the_queue() -> None:
    run = weekly()
    for position, indices in ((0, [1]), (1, [2, 3]), (2, [4])):
        run.queued(position, indices)
    run.script(event(1, ScriptState.DONE, process=4))
    _, effects = run.script(event(2, ScriptState.FAILED))
    assert effects == type(effects)(stop=(3,), resume=True)


def test_scripts_are_claimed_by_execution_id_before_the_ack_and_late_blocks_of_a_failed_run_are_stopped() -> None:
    run = weekly()
    execution = run.blocks[0].execution
    seen, _ = run.script(event(7, ScriptState.RUNNING, execution=execution))
    assert seen is not None
    assert seen.block == 0
    run.queued(0, [7])
    run.script(event(7, ScriptState.FAILED))
    assert run.queued(1, [8, 9]).stop == (8, 9)  # added while the failure came: stopped at once


def test_a_failed_shutdown_says_the_site_may_not_be_safe() -> None:
    run = weekly()
    for position, indices in ((0, [1]), (1, [2]), (2, [3])):
        run.queued(position, indices)
    run.script(event(1, ScriptState.DONE, process=4))
    run.script(event(2, ScriptState.DONE, process=4))
    _, effects = run.script(event(3, ScriptState.FAILED))
    assert not effects.resume
    assert "the shutdown failed: the site may not be safe" in run.outcome()


def test_a_run_is_restored_from_its_stored_plan() -> None:
    run = weekly()
    run.queued(0, [1, 2])
    run.script(event(1, ScriptState.DONE, process=4))
    restored = Run("weekly", 0.0, [])
    restored.restore(json.loads(run.plan_json()))
    assert restored.scripts[1].done
    assert not restored.scripts[2].ended
    assert restored.next_to_add() == 1


def test_a_night_rules_target_goes_with_each_of_its_blocks_and_survives_a_restart() -> None:
    from obsq.csc.scheduler.csc import _rule_run
    from obsq.csc.scheduler.schedule import parse_schedule

    rule = parse_schedule("""
site: {name: x, latitude: -30, longitude: -70, elevation: 0, timezone: UTC}
rules: [{name: r, cron: "0 * * * *", blocks: [BLOCK-295, BLOCK-310], estimated_duration: 1,
         target: {name: HD104304, ra: "12:0:44.46", dec: "-10:26:46.1"}}]
""", "night.yaml").rule("r")  # fmt: skip
    run = _rule_run(rule, 1_800_078_000.0, 1_800_078_037.0)
    assert [json.loads(b.target)["name"] for b in run.blocks] == ["HD104304", "HD104304"]
    stored = PlannedBlock.from_json(json.loads(json.dumps(run.blocks[0].to_json())))
    assert stored.target == run.blocks[0].target
    older = {k: v for k, v in run.blocks[0].to_json().items() if k != "target"}  # stored before targets
    assert PlannedBlock.from_json(older).target == ""
