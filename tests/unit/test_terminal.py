"""What an operator reads in the terminal: progress, queue changes, schemas, help, times, certifications."""

from __future__ import annotations

import argparse
import io
import json
from typing import Any

import pytest

from obsq.csc.app.queue import queue_changes
from obsq.csc.app.scripts import schema_text
from obsq.csc.cli import build_parser
from obsq.csc.clock import TAI_MINUS_UTC_S, day_obs, tai_iso
from obsq.csc.core.status import StatusBoard, format_table, status_json
from obsq.csc.core.topics import ComponentId
from obsq.csc.ocps.repository import certification_text, mjd_date
from obsq.csc.weekly.follow import Progress, QueueFollower
from obsq.csc.weekly.printing import ConsoleView
from obsq.csc.weekly.run import run_start_tai
from obsq.scripts.library import ScriptRoots, load_script_class

from .test_web import QUEUE_ITEMS, queue_event


def progress(done: int) -> Progress:
    return Progress("BLOCK-295", 5, 13, "auxtel/make_latiss_calibrations.py", "Taking 4 biases.", done, 205, 100.0, 5.0)


def test_progress_is_rewritten_in_place_on_a_terminal_and_a_line_each_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    screen = io.StringIO()
    view = ConsoleView(screen, in_place=True)
    view.progress(progress(1))
    view.progress(progress(1))  # no change, nothing written
    view.progress(progress(2))
    view.line("queued BLOCK-310: scripts 11..13")
    written = screen.getvalue()
    assert written.count("\r\033[K") == 2
    assert "\n" not in written.split("queued")[0][:-1]  # the progress stayed on one line until a message came
    assert written.endswith("images 2/205 | left ~100 s simulated (5.0 s real)\nqueued BLOCK-310: scripts 11..13\n")
    log = io.StringIO()
    view = ConsoleView(log, in_place=False)
    view.progress(progress(1))
    view.progress(progress(2))
    assert log.getvalue().count("\n") == 2
    assert "\r" not in log.getvalue()
    monkeypatch.setenv("COLUMNS", "40")
    narrow = io.StringIO()
    ConsoleView(narrow, in_place=True).progress(progress(3))
    assert len(narrow.getvalue()) == len("\r\033[K") + 39
    assert narrow.getvalue().endswith("…")


def test_the_estimate_follows_the_rate_images_come_at() -> None:
    follower = QueueFollower(speed=600.0)
    item = {"index": 1, "path": "x.py", "state": "RUNNING", "checkpoint": "", "done": 0, "total": 200,
            "block": "BLOCK-295", "reason": "", "duration": 6000.0, "area": "current"}  # fmt: skip
    follower.indices = {1}
    follower.on_queue({"running": True, "currentSalIndex": 1, "items": json.dumps([item])})
    first = follower.progress(now=0.0)
    assert first is not None
    # before a rate is measured: the usual 0.15 s an image (30 s for 200), not the simulated time alone (10 s),
    # so the estimate does not jump once images come
    assert first.left_real_s == pytest.approx(0.15 * 200)
    for done, now in ((1, 1.0), (5, 2.0), (11, 4.0)):  # one image each 0.3 s of real time: files take real time
        follower.on_queue({"running": True, "currentSalIndex": 1,
                           "items": json.dumps([item | {"done": done}])})  # fmt: skip
        late = follower.progress(now=now)
    assert late is not None
    assert late.left_real_s == pytest.approx(0.3 * 189)


def test_the_first_block_is_shown_before_its_first_script_runs() -> None:
    follower = QueueFollower(speed=600.0)
    follower.indices = {200001}
    item = {"index": 200001, "path": "set_summary_state.py", "state": "CONFIGURED", "checkpoint": "", "done": 0,
            "total": 0, "block": "BLOCK-309", "reason": "", "duration": 1.0, "area": "queue"}  # fmt: skip
    follower.on_queue({"running": True, "currentSalIndex": 0, "items": json.dumps([item])})
    shown = follower.progress(now=0.0)
    assert shown is not None
    assert (shown.block, shown.step) == ("BLOCK-309", "waiting for the queue")
    done = item | {"area": "history", "state": "DONE"}
    follower.on_queue({"running": True, "currentSalIndex": 0, "items": json.dumps([done])})
    assert follower.progress(now=1.0, adding=True).step == "queueing the next block"  # type: ignore[union-attr]


def test_queue_watch_prints_what_changed() -> None:
    first = queue_event(QUEUE_ITEMS)
    lines = queue_changes(None, first)
    assert lines[0] == "queue running; current 200001; 1 queued, 1 in history"
    assert any(line.endswith("exposure 2 of 5: a checkpoint text well over forty characters long 1/5 images")
               for line in lines)  # fmt: skip
    moved: list[dict[str, Any]] = [dict(i) for i in QUEUE_ITEMS]
    moved[1] |= {"done": 2, "checkpoint": "exposure 3 of 5"}
    moved.append({**QUEUE_ITEMS[0], "index": 200003})
    second = queue_event(moved) | {"token": 2}
    assert queue_changes(first, second) == [
        "~ 200001 auxtel/take_image_latiss.py: checkpoint: exposure 3 of 5; 2/5 images",
        "+ queue    200003 -         sleep.py                                      CONFIGURED",
    ]
    paused = queue_event(moved, running=False) | {"token": 3}
    assert queue_changes(second, paused) == ["queue PAUSED; current 200001; 1 queued, 1 in history"]


def test_script_schemas_print_descriptions_and_no_anchors() -> None:
    roots = ScriptRoots.default()
    for standard in (True, False):
        for path in roots.available(standard):
            cls = load_script_class(roots.resolve(path, standard))
            text = schema_text(path, cls)
            assert "&id" not in text, path
            assert "*id" not in text, path
            for name, field in (cls.get_schema() or {}).get("properties", {}).items():
                assert field.get("description"), f"{path}: field {name} has no description"
    text = schema_text("auxtel/take_image_latiss.py", load_script_class(roots.resolve("auxtel/take_image_latiss.py",
                                                                                        True)))  # fmt: skip
    assert "#   image_type               * one of BIAS, DARK" in text
    assert "filter name or slot (1-3)" in text
    text = schema_text("auxtel/offset_atcs.py", load_script_class(roots.resolve("auxtel/offset_atcs.py", True)))
    assert "#   offset_xy.x" in text  # an object's own fields, with ts_xml-style units
    assert "* number [arcsec] — offset in x" in text


def test_every_option_of_every_command_has_help() -> None:
    missing = []

    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                helps = {choice.dest: choice.help for choice in action._choices_actions}
                for name, sub in action.choices.items():
                    if not helps.get(name):
                        missing.append(f"{path} {name}")
                    walk(sub, f"{path} {name}")
            elif not isinstance(action, argparse._HelpAction) and not action.help:
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")

    walk(build_parser(), "obsq")
    assert missing == []


@pytest.mark.parametrize("wall", ["2026-12-02T11:59:00", "2026-12-02T12:01:00", "2026-12-07T23:30:00"])
def test_a_simulated_weekly_keeps_one_dayobs(wall: str) -> None:
    import datetime

    now = datetime.datetime.fromisoformat(wall).replace(tzinfo=datetime.UTC).timestamp() + TAI_MINUS_UTC_S
    start = run_start_tai(now)
    assert tai_iso(start).endswith("T13:00:00.000Z")
    assert day_obs(start) == day_obs(now)
    assert day_obs(start + 22 * 3600) == day_obs(start)  # 22 simulated hours: a run of 2 min at 600x


def test_times_read_as_iso() -> None:
    assert tai_iso(1_800_000_000.0 + TAI_MINUS_UTC_S) == "2027-01-15T08:00:00.000Z"
    assert mjd_date(61016.5) == "2025-12-07 12:00"  # MJD 60000 is 2023-02-25


def test_scripts_show_their_state_in_the_status_table() -> None:
    board = StatusBoard()
    script = ComponentId("Script", 200001)
    board.observe(script, "heartbeat", {}, 10.0, 10.0)
    board.observe(script, "state", {"state": 3}, 10.0, 10.0)
    (row,) = board.rows(10.5)
    assert (row.component, row.state, row.health) == ("Script:200001", "RUNNING", "alive")
    assert board.rows(14.0)[0].health == "alive"  # a script's heartbeat comes every 5 s
    assert board.rows(23.0)[0].health == "not responding"


def test_a_scheduler_that_will_queue_nothing_says_so_in_the_status_table() -> None:
    board = StatusBoard()
    scheduler = ComponentId("Scheduler", 2)
    board.observe(scheduler, "heartbeat", {}, 10.0, 10.0)
    board.observe(scheduler, "summaryState", {"summaryState": 5}, 10.0, 10.0)
    (row,) = board.rows(10.5)
    assert row.note == "nothing will be queued: send start, then enable"
    assert "nothing will be queued" in format_table([row])
    board.observe(scheduler, "summaryState", {"summaryState": 2}, 11.0, 11.0)
    board.observe(scheduler, "detailedState", {"substate": 1}, 11.0, 11.0)
    assert board.rows(11.5)[0].note == "stopped: nothing will be queued until resume"
    board.observe(scheduler, "detailedState", {"substate": 2}, 12.0, 12.0)
    assert board.rows(12.5)[0].note == ""


def test_the_status_table_says_what_hardware_each_component_drives_and_whether_it_answers() -> None:
    board = StatusBoard()
    dome, queue = ComponentId("ATDome"), ComponentId("ScriptQueue", 2)
    for cid in (dome, queue):
        board.observe(cid, "heartbeat", {}, 10.0, 10.0)
    where = "alpaca://10.0.0.5:11111/dome/0"
    board.observe(dome, "deviceConnection", {"devices": where, "connected": False, "report": ""}, 10.0, 10.0)
    assert board.rows(10.5)[0].connection == "not connected (start it)"
    board.observe(dome, "deviceConnection", {"devices": where, "connected": True, "report": ""}, 11.0, 11.0)
    assert board.rows(11.5)[0].connection == "connected"
    failure = f"the move to 30 deg failed: {where} PUT slewtoazimuth: no answer in time"
    board.observe(dome, "deviceConnection", {"devices": where, "connected": False, "report": failure}, 12.0, 12.0)
    rows = board.rows(12.5)
    assert rows[0].connection == f"NOT CONNECTED: {failure}"
    assert rows[1].devices == ""  # the queue drives no hardware
    table = format_table(rows)
    assert table.splitlines()[-2:] == ["DEVICES", f"  ATDome  {where}  NOT CONNECTED: {failure}"]
    listed = json.loads(status_json(rows))  # obsq status --json
    assert [r["component"] for r in listed] == ["ATDome", "ScriptQueue:2"]
    assert listed[0]["connection"] == f"NOT CONNECTED: {failure}"
    assert listed[0]["heartbeat_age_s"] == pytest.approx(2.5)
    assert set(listed[1]) == {"component", "state", "heartbeat_age_s", "health", "error", "note", "devices",
                              "connection"}  # fmt: skip


def test_plan_members_start_as_a_site_runs_them_unless_told() -> None:
    from obsq.csc.app.components import plan_members
    from obsq.csc.core.states import State

    states = {str(cid): state for cid, state in plan_members([], [])}
    assert states["ATWhiteLight"] == states["OCPS:1"] == State.STANDBY
    assert states["ATDome"] == states["ScriptQueue:2"] == states["Scheduler:2"] == State.ENABLED
    everything = {state for _, state in plan_members([], ["standby", "ATDome=enabled"])}
    assert everything == {State.STANDBY, State.ENABLED}


def test_superseded_masters_say_so() -> None:
    from dataclasses import replace

    from obsq.csc.ocps.repository import Product

    product = Product(id=4, type="bias", sigkey="", signature={}, filter="", version=1, path="", collection="",
                      mjd_first=0, mjd_last=0, mjd_mean=0, inputs=[], config={}, software="", created="", stats={},
                      verified="passed", certified=[(61016.5, 61023.5)])  # fmt: skip
    assert certification_text(product, {}) == "2025-12-07 12:00 – 2025-12-14 12:00 UTC"
    gone = replace(product, certified=[])
    assert certification_text(gone, {4: "superseded by product 9 for …"}) == "superseded by product 9 for …"
    assert certification_text(gone, {}) == "not certified"


def test_a_configuration_with_several_mistakes_names_them_all_with_did_you_mean() -> None:
    from obsq.csc.core.errors import ValidationError

    cls = load_script_class(ScriptRoots.default().resolve("auxtel/take_image_latiss.py", True))
    with pytest.raises(ValidationError) as caught:
        cls.validate_configuration("exp_time: 3\nimage_type: FLATT\nnimages: -1\nfiltre: SDSSr_65mm\n")
    message = str(caught.value)
    assert message.startswith("LatissTakeImage configuration: 4 problems: (1) field 'exp_time' is not allowed")
    assert "did you mean 'exp_times'?" in message
    assert "(2) field 'filtre' is not allowed (rule: additionalProperties); did you mean 'filter'?" in message
    assert "(3) field 'image_type': 'FLATT' is not one of" in message
    assert "(4) field 'nimages': -1 is none of" in message
    with pytest.raises(ValidationError, match=r"^LatissTakeImage configuration: field 'exp_time' is not allowed"):
        cls.validate_configuration("exp_time: 3\nimage_type: BIAS\n")  # one mistake: one line, as before


def test_a_script_in_the_other_root_is_pointed_at_with_how_to_ask_for_it() -> None:
    from obsq.csc.core.errors import ValidationError

    roots = ScriptRoots.default()
    with pytest.raises(ValidationError, match=r"it is an external script: give --external"):
        roots.resolve("auxtel/make_latiss_calibrations.py", True)
    with pytest.raises(ValidationError, match=r"it is a standard script: leave out --external"):
        roots.resolve("auxtel/take_image_latiss.py", False)
    with pytest.raises(ValidationError, match=r"unknown standard script 'auxtel/nope.py'; see `obsq script list`"):
        roots.resolve("auxtel/nope.py", True)


def test_every_option_with_a_default_says_it_in_its_help() -> None:
    """An option that takes a value and has a default names it (`default 600`, `default obsq-data`...)."""
    silent = []

    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, f"{path} {name}")
                continue
            if not action.option_strings or action.nargs == 0:  # positionals, flags
                continue
            if action.default in (None, argparse.SUPPRESS, [], ()):
                continue
            if "default" not in (action.help or ""):
                silent.append(f"{path} {'/'.join(action.option_strings)} (default {action.default!r})")

    walk(build_parser(), "obsq")
    assert silent == []
