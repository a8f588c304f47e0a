"""ScriptQueue refuses bad input at the door, naming the problem, and queues nothing."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from obsq.csc.bus.memory import MemoryBroker
from obsq.csc.component import AckError
from obsq.csc.scriptqueue.blocks import available_blocks, block_folders
from obsq.csc.scriptqueue.csc import ScriptQueueCsc
from obsq.csc.scriptqueue.inprocess import InProcessRunner
from obsq.csc.scriptqueue.store import MemoryQueueStore
from obsq.csc.testing import Rig, component_rig
from obsq.scripts.library import ScriptRoots, load_script_class

BLOCKS = block_folders()


def make(broker: MemoryBroker, **kwargs: Any) -> ScriptQueueCsc:
    runner = InProcessRunner(broker, kwargs["clock"], kwargs["root"])
    return ScriptQueueCsc(runner=runner, store=MemoryQueueStore(), **kwargs)


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    broker = MemoryBroker()
    async with component_rig(functools.partial(make, broker), "ScriptQueue:2", broker=broker) as rig:
        await rig.enable()
        yield rig


async def refused(rig: Rig, command: str, data: dict[str, Any], message: str) -> None:
    with pytest.raises(AckError, match=message):
        await rig.command(command, data)
    assert isinstance(rig.csc, ScriptQueueCsc)
    assert rig.csc.model.queue == []
    assert rig.csc.model.next_index == 200_001  # nothing was even allocated a process


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"path": "auxtel/no_such.py"}, "unknown standard script 'auxtel/no_such.py'"),
        ({"path": "../etc/passwd.py"}, "must be a relative .py path inside the standard root"),
        ({"path": "auxtel/take_image_latiss.py", "config": "image_type: FLAT\nexp_times: fast\n"},
         "script auxtel/take_image_latiss.py: LatissTakeImage configuration: field 'exp_times'"),
        ({"path": "auxtel/take_image_latiss.py", "config": "exp_times: 1\n"},
         "field 'image_type' is required"),
        ({"path": "auxtel/take_image_latiss.py", "config": "image_type: FLAT\ncolour: red\n"},
         "field 'colour' is not allowed"),
        ({"path": "auxtel/take_image_latiss.py", "config": "image_type: [\n"}, "not valid YAML"),
        ({"path": "auxtel/stop_tracking.py", "config": "speed: 2\n"}, "StopTracking takes no configuration"),
        ({"path": "auxtel/make_latiss_calibrations.py", "isStandard": False, "config": "script_mode: ALL\n"},
         "field 'script_mode': 'ALL' is not one of"),
        ({"path": "set_summary_state.py", "location": 3, "locationSalIndex": 5}, "script 5 is not in the queue"),
        ({"path": "auxtel/take_image_latiss.py", "config": "image_type: FLAT\nexp_times: [1,\n  2\n"},
         "LatissTakeImage configuration is not valid YAML: line 4, column 1"),
        ({"path": "auxtel/take_image_latiss.py", "config": "image_type: FLAT\nexp_times: 1\nimage_type: BIAS\n"},
         "LatissTakeImage configuration is not valid YAML: line 3, column 1: .*the key 'image_type' is given twice"
         " \\(first on line 1\\)"),
        ({"path": "auxtel/take_image_latiss.py", "config": "{a: " * 40 + "1" + "}" * 40},
         "LatissTakeImage configuration: field .* nests deeper than 32 levels \\(rule: maxDepth\\)"),
        ({"path": "auxtel/take_image_latiss.py", "config": "[" * 5000 + "]" * 5000},
         "LatissTakeImage configuration nests deeper than 32 levels \\(rule: maxDepth\\)"),
        ({"path": "auxtel/take_image_latiss.py", "config": "image_type: FLAT\nnimages: 2.0\n"},
         "field 'nimages': 2.0 is none of: an integer; a null \\(rule: anyOf\\)"),
    ],
)  # fmt: skip
async def test_add_refuses_or_fails_the_configuration(rig: Rig, data: dict[str, Any], message: str) -> None:
    """An unknown script or location fails the add; a configuration its schema refuses completes the add and
    goes to history CONFIGURE_FAILED with the named reason (ts_scriptqueue's test_add_bad_config)."""
    if "config" not in data:
        await refused(rig, "add", data, message)
        return
    ack = await rig.command("add", {"isStandard": True, "location": 2} | data)
    assert isinstance(rig.csc, ScriptQueueCsc)
    item = rig.csc.model.find(int(ack.result))
    assert item is not None
    assert rig.csc.model.queue == []
    assert (item.process_state.name, item.script_state.name) == ("CONFIGURE_FAILED", "CONFIGURE_FAILED")
    assert re.search(message, item.reason), item.reason
    script = rig.remote.event("script").get()
    assert (script["scriptSalIndex"], script["processState"]) == (item.index, 6)


def block(**changes: Any) -> str:
    data = {"name": "t", "program": "BLOCK-T1",
            "scripts": [{"name": "auxtel/stop_tracking.py", "standard": True, "parameters": {}}]}  # fmt: skip
    data.update(changes)
    return json.dumps(data)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"id": "BLOCK-999"}, "unknown block 'BLOCK-999'; available: BLOCK-295, BLOCK-309, BLOCK-310"),
        ({"id": "{not json"}, "the block given as JSON is not valid JSON"),
        ({"id": block(program="295")}, "field 'program': '295' does not match"),
        ({"id": block(program="XBLOCK-295")}, "field 'program': 'XBLOCK-295' does not match"),
        ({"id": block(scripts=[{"name": "auxtel/stop_tracking.py", "standard": True}])},
         "field 'scripts/0/parameters' is required \\(rule: required\\)"),
        ({"id": block(scripts=[])}, "field 'scripts': \\[\\] should be non-empty"),
        ({"id": block(scripts=[{"name": "auxtel/nope.py", "standard": True, "parameters": {}}])},
         "block BLOCK-T1 script 1 \\(auxtel/nope.py\\): unknown standard script"),
        ({"id": block(scripts=[{"name": "auxtel/take_image_latiss.py", "standard": True,
                                "parameters": {"image_type": "FLAT", "exp_times": "$exptime"}}])},
         "template \\$exptime has no value"),
        ({"id": block(scripts=[{"name": "auxtel/take_image_latiss.py", "standard": True,
                                "parameters": {"image_type": "FLAT", "nimages": "many"}}])},
         "block BLOCK-T1 script 1 .*field 'nimages'"),
        ({"id": "BLOCK-309", "override": "speed: 3"}, "no configuration_schema, so it takes no override"),
        ({"id": block(scripts=[{"name": "auxtel/take_image_latiss.py", "standard": True,
                                "parameters": {"image_type": "FLAT", "note": "$"}}])},
         "'\\$' is not a valid template: write \\$name or \\$\\{name\\}, and \\$\\$ for a dollar \\(rule: template\\)"),
        ({"id": block(scripts=[{"name": "auxtel/take_image_latiss.py", "standard": True,
                                "parameters": {"image_type": "FLAT", "note": "${t"}}])}, "is not a valid template"),
        ({"id": block(configuration_schema="type: object\nproperties: {n: {type: 7}}\n")},
         "configuration_schema is not a valid JSON Schema: field 'properties/n/type': 7 is none of: .* anyOf"),
        ({"id": "BLOCK-295", "override": "{a: " * 40 + "1" + "}" * 40},
         "addBlock BLOCK-295: override: field .* maxDepth"),
        ({"id": "BLOCK-295", "override": "[" * 5000 + "]" * 5000}, "addBlock BLOCK-295: override nests deeper"),
    ],
)  # fmt: skip
async def test_add_block_refuses(rig: Rig, data: dict[str, Any], message: str) -> None:
    await refused(rig, "addBlock", data, message)


async def test_templates_take_the_block_configuration_defaults_and_override(rig: Rig) -> None:
    schema = yaml.safe_dump({"type": "object", "properties": {"exptime": {"type": "number", "default": 2.5}}})
    script = {"name": "auxtel/take_image_latiss.py", "standard": True,
              "parameters": {"image_type": "FLAT", "exp_times": "$exptime"}}  # fmt: skip
    data = json.loads(block(configuration_schema=schema, scripts=[script]))
    assert isinstance(rig.csc, ScriptQueueCsc)
    from obsq.csc.scriptqueue.blocks import expand_block

    expanded = expand_block(data, "the block given as JSON", {}, rig.csc.check_script)
    assert yaml.safe_load(expanded.scripts[0].config)["exp_times"] == 2.5  # the value keeps its type
    expanded = expand_block(data, "the block given as JSON", {"exptime": 7}, rig.csc.check_script)
    assert yaml.safe_load(expanded.scripts[0].config)["exp_times"] == 7


def test_every_shipped_block_and_its_script_configurations_are_valid() -> None:
    from obsq.csc.scriptqueue.blocks import expand_block, read_block

    roots = ScriptRoots.default()
    blocks = available_blocks(BLOCKS)
    assert set(blocks) == {"BLOCK-295", "BLOCK-309", "BLOCK-310", "BLOCK-9001"}

    def check(path: str, standard: bool, config: str) -> None:
        load_script_class(roots.resolve(path, standard)).validate_configuration(config)

    # BLOCK-9001 (flats by cadence) is configured by the Scheduler with each flat set's filter and exposure
    configured = {"BLOCK-9001": {"filter": "SDSSr_65mm", "exposure": 6.0}}
    for program in blocks:
        data, label = read_block(program, BLOCKS)
        block = expand_block(data, label, configured.get(program, {}), check)
        assert block.program == program
    flats = expand_block(*read_block("BLOCK-9001", BLOCKS), configured["BLOCK-9001"], check)
    assert yaml.safe_load(flats.scripts[0].config) == {
        "image_type": "FLAT", "nimages": 10, "exp_times": 6.0, "filter": "SDSSr_65mm", "grating": "empty_1",
        "program": "BLOCK-9001", "reason": "flats_by_cadence"}  # fmt: skip


def test_rubins_blocks_are_accepted_verbatim() -> None:
    """Every script configuration of Rubin's AuxTel files without templates validates as it is written."""
    rubin = Path(__file__).resolve().parents[1] / "data" / "rubin-auxtel-blocks"  # Rubin's files, as they are
    roots = ScriptRoots.default()
    missing, checked = set(), 0
    for file in sorted(rubin.glob("*.json")):
        if "$" in file.read_text():
            continue  # filled by the Scheduler's target or the block's configuration: the --check test's
        for script in json.loads(file.read_text())["scripts"]:
            if not any((root / script["name"]).is_file() for root in roots.roots(script["standard"])):
                missing.add(script["name"])
                continue
            cls = load_script_class(roots.resolve(script["name"], script["standard"]))
            cls.validate_configuration(yaml.safe_dump(script.get("parameters", {})))
            checked += 1
    assert missing == set()  # (latiss_wep_align, not here, is only in ops-cwfs, a block with templates)
    assert checked > 150, checked


@pytest.mark.parametrize("program", ["BLOCK-271_1", "BLOCK-T40_HD104304", "BLOCK-295"])
def test_sub_programs_are_programs(program: str) -> None:
    from obsq.csc.scriptqueue.blocks import expand_block

    expanded = expand_block(json.loads(block(program=program)), "the block given as JSON", {}, lambda *_: None)
    assert expanded.program == program


def test_blocks_are_found_in_subfolders(tmp_path: Path) -> None:
    nested = tmp_path / "auxtel" / "calibrations"
    nested.mkdir(parents=True)
    (nested / "BLOCK-T40_HD104304.json").write_text(block(program="BLOCK-T40_HD104304"))
    found = available_blocks([*BLOCKS, tmp_path])
    assert found["BLOCK-T40_HD104304"] == nested / "BLOCK-T40_HD104304.json"
    assert "BLOCK-295" in found


def test_take_image_latiss_takes_rubins_configuration() -> None:
    roots = ScriptRoots.default()
    cls = load_script_class(roots.resolve("auxtel/take_image_latiss.py", True))
    config = cls.validate_configuration(yaml.safe_dump({
        "image_type": "ENGTEST", "exp_times": [1.0, 2.0], "filter": 2, "grating": "empty_1",
        "visit_metadata": {"ra": 1.5, "dec": -30.0, "rot_sky": 0.0}, "ignore": ["atdome"], "reason": "r",
    }))  # fmt: skip
    assert (config["filter"], config["image_type"]) == (2, "ENGTEST")
    with pytest.raises(Exception, match="filter"):
        cls.validate_configuration(yaml.safe_dump({"image_type": "FLAT", "filter": 7}))  # no slot 7 on the wheel


@pytest.mark.parametrize("script", ["auxtel/take_image_latiss.py", "auxtel/make_latiss_calibrations.py"])
def test_block_scripts_take_rubins_test_case(script: str) -> None:
    roots = ScriptRoots.default()
    cls = load_script_class(roots.resolve(script, script.startswith("auxtel/take")))
    given = {"image_type": "BIAS"} if "take_image" in script else {"script_mode": "BIAS"}
    case = {"name": "LVV-T2716", "execution": "LVV-E3321", "version": "1"}
    config = cls.validate_configuration(yaml.safe_dump({**given, "program": "BLOCK-295", "test_case": case}))
    assert config["test_case"] == {**case, "initial_step": 1, "project": "LVV"}  # Rubin's defaults
    with pytest.raises(Exception, match=r"test_case.*version"):
        cls.validate_configuration(yaml.safe_dump({**given, "test_case": {"name": "LVV-T1", "execution": "E"}}))
    with pytest.raises(Exception, match=r"test_case.*step"):
        cls.validate_configuration(yaml.safe_dump({**given, "test_case": {**case, "step": 2}}))


def test_rubins_target_values_fill_every_block_as_its_scheduler_does() -> None:
    """ts_scheduler's DriverTarget.get_script_config: an addBlock's defaults, a target's values, the block's first."""
    from obsq.csc.scriptqueue.blocks import Target, expand_block

    parameters = {"ra": "$ra", "dec": "$dec", "exp_times": "$exp_times", "name": "$name", "reason": "$program $note",
                  "band": "$band_filter", "n": "$num_exp", "why": "$observation_reason", "rot": "$rot_sky"}  # fmt: skip
    script = {"name": "auxtel/stop_tracking.py", "standard": True, "parameters": parameters}
    data = json.loads(block(program="BLOCK-311", scripts=[script]))
    expanded = expand_block(data, "the block given as JSON", {}, lambda *_: None)
    assert yaml.safe_load(expanded.scripts[0].config) == {
        "ra": "+0:00:00", "dec": "+0:00:00", "exp_times": [], "name": "Target", "reason": "BLOCK-311 Target",
        "band": "", "n": 0, "why": "Scheduler_Driven_Observation", "rot": 0.0}  # fmt: skip
    target = Target(targetid=7, band_filter="r", note="spec:HD 104304", ra_deg=123.456789, dec_deg=-33.123456,
                    rot_sky=90.0, exp_times=(30.0, 30.0))  # fmt: skip
    expanded = expand_block(data, "the block given as JSON", {}, lambda *_: None, target)
    config = yaml.safe_load(expanded.scripts[0].config)
    assert (config["ra"], config["dec"]) == ("+8:13:49.62936", "-33:07:24.4416")  # as astropy writes them for Rubin
    assert (config["name"], config["n"], config["exp_times"], config["band"]) == ("HD 104304", 2, [30.0, 30.0], "r")
    # the block's own configuration wins over a target value of the same name
    schema = yaml.safe_dump({"type": "object", "properties": {"name": {"type": "string", "default": "mine"}}})
    data = json.loads(block(program="BLOCK-311", scripts=[script], configuration_schema=schema))
    expanded = expand_block(data, "the block given as JSON", {}, lambda *_: None, target)
    assert yaml.safe_load(expanded.scripts[0].config)["name"] == "mine"


def test_an_addblock_target_is_where_the_target_is_now() -> None:
    """addBlock's target (YAML): its values, with alt/az and obs_time computed where the target is at the time."""
    from obsq.csc.core.errors import ValidationError
    from obsq.csc.core.sky import altaz
    from obsq.csc.scriptqueue.blocks import block_target

    tai = 1_800_078_480.0  # 2027-01-16 06:48 UTC: HD 104304 in the east at about 40 deg
    target = block_target('{name: HD104304, ra: "12:0:44.4601", dec: "-10:26:46.0670", exp_times: 8}', "t", tai)
    assert target is not None
    assert (target.note, target.exp_times) == ("HD104304", (8.0,))
    assert (target.az, target.alt) == pytest.approx(altaz(target.ra_deg, target.dec_deg, tai))
    assert 35.0 < target.alt < 45.0
    assert target.obs_time == pytest.approx(tai / 86400 + 40587.0)
    assert block_target("  ", "t", tai) is None
    with pytest.raises(ValidationError, match=r"addBlock x: target: field 'dec' is required"):
        block_target("{ra: 1}", "addBlock x: target", tai)
    with pytest.raises(ValidationError, match=r"t: a target is a mapping"):
        block_target("[1, 2]", "t", tai)


def test_a_program_defined_twice_differently_is_refused_by_name(tmp_path: Path) -> None:
    from obsq.csc.core.errors import ValidationError
    from obsq.csc.scriptqueue.blocks import block_clashes, read_block

    site = tmp_path / "site"
    site.mkdir()
    shipped = BLOCKS[0] / "BLOCK-309.json"
    (site / "block-309-copy.json").write_text(shipped.read_text())  # the same definition: one block
    (site / "mine.json").write_text(block(program="BLOCK-9001"))  # a different BLOCK-9001: a clash
    folders = [*BLOCKS, site]
    assert set(block_clashes(folders)) == {"BLOCK-9001"}
    assert "BLOCK-9001" not in available_blocks(folders)
    assert "BLOCK-309" in available_blocks(folders)
    with pytest.raises(ValidationError, match=r"block BLOCK-9001 is defined differently in 2 files .*mine\.json"):
        read_block("BLOCK-9001", folders)
    assert read_block(str(site / "mine.json"), folders)[0]["program"] == "BLOCK-9001"  # a file is still a file


def test_obsqs_own_blocks_do_not_take_rubins_ids() -> None:
    """Rubin's AuxTel library uses BLOCK-2xx/3xx and BLOCK-Tn; obsq's own blocks are numbered from 9001."""
    rubin = {"BLOCK-294", "BLOCK-295", "BLOCK-303", "BLOCK-304", "BLOCK-305", "BLOCK-306", "BLOCK-307", "BLOCK-308",
             "BLOCK-309", "BLOCK-310", "BLOCK-311", "BLOCK-312", "BLOCK-317", "BLOCK-273"}  # fmt: skip
    ours = {p for p in available_blocks(BLOCKS) if p not in ("BLOCK-295", "BLOCK-309", "BLOCK-310")}
    assert ours == {"BLOCK-9001"}
    assert not ours & rubin


def test_add_block_check_validates_as_the_queue_and_sends_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from obsq.csc.cli import main

    good = tmp_path / "good.json"
    good.write_text(block(program="BLOCK-T1"))
    bad = tmp_path / "bad.json"
    bad.write_text(
        block(program="BLOCK-T2", scripts=[{"name": "auxtel/no_such.py", "standard": True, "parameters": {}}])
    )
    # no broker anywhere: --check never connects
    assert main(["queue", "add-block", str(good), "--check", "--broker", "mqtt://127.0.0.1:9"]) == 0
    assert "accepted: block BLOCK-T1 (t), 1 script, nothing sent" in capsys.readouterr().out
    assert main(["queue", "add-block", str(bad), "--check"]) == 1
    assert "script 1 (auxtel/no_such.py): unknown standard script" in capsys.readouterr().err
    (tmp_path / "link.json").symlink_to(tmp_path / "gone.json")
    assert main(["queue", "add-block", str(tmp_path / "link.json"), "--check"]) == 1
    assert "is a link to" in capsys.readouterr().err
