"""obsq's interface files against Rubin's: every field ts_xml defines for a topic obsq implements is there.

The field lists are data, `tests/data/rubin_fields.json`, made by `tools/rubin-fields` from
lsst-ts/ts_xml (the commit is recorded in the file). A topic obsq does not implement is not
checked here; the fields obsq has beyond Rubin's (imageType, groupId on takeImages…) may stay.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

RUBIN = json.loads((Path(__file__).resolve().parents[1] / "data" / "rubin_fields.json").read_text())
INTERFACES = Path(__file__).resolve().parents[2] / "schemas" / "interfaces"
GENERICS = json.loads((INTERFACES / "generics.json").read_text())


def fields(topic: dict[str, Any]) -> set[str]:
    return set(topic.get("schema", topic).get("properties", {}))


def test_the_field_lists_name_their_source() -> None:
    assert RUBIN["source"] == "lsst-ts/ts_xml"
    assert len(RUBIN["commit"]) == 40
    assert RUBIN["components"]["ScriptQueue"]["commands"]["file"].endswith("ScriptQueue/ScriptQueue_Commands.xml")
    # topics are named as obsq names them: ATDome_position is "position", ATDome_command_openShutter "openShutter"
    assert "position" in RUBIN["components"]["ATDome"]["telemetry"]["topics"]
    assert "openShutter" in RUBIN["components"]["ATDome"]["commands"]["topics"]


@pytest.mark.parametrize("component", sorted(RUBIN["components"]))
def test_no_rubin_field_is_missing_from_an_implemented_topic(component: str) -> None:
    ours = json.loads((INTERFACES / f"{component}.json").read_text())
    missing = []
    implemented = 0
    for kind, entry in RUBIN["components"][component].items():
        for topic, rubin_fields in entry["topics"].items():
            mine = ours.get(kind, {}).get(topic)
            if mine is None:
                continue
            implemented += 1
            missing += [f"{kind}/{topic}.{f}" for f in rubin_fields if f != "salIndex" and f not in fields(mine)]
    assert implemented > 0
    assert missing == []


def test_no_generic_field_is_missing() -> None:
    missing = []
    for section in ("common", "csc"):
        for kind in ("commands", "events"):
            for topic, spec in GENERICS[section].get(kind, {}).items():
                rubin_fields = RUBIN["generics"][kind].get(topic)
                if rubin_fields is not None:
                    missing += [f"{kind}/{topic}.{f}" for f in rubin_fields if f not in fields(spec)]
    assert missing == []


@pytest.mark.parametrize("component", sorted(RUBIN["components"]))
def test_every_field_carries_ts_xml_s_unit(component: str) -> None:
    """The units ts_xml gives the fields obsq implements (other than unitless) are in obsq's interface files."""
    ours = json.loads((INTERFACES / f"{component}.json").read_text())
    wrong = []
    for kind, entry in RUBIN["components"][component].items():
        for topic, units in entry.get("units", {}).items():
            mine = ours.get(kind, {}).get(topic)
            properties = mine.get("schema", mine).get("properties", {}) if mine else {}
            wrong += [f"{kind}/{topic}.{field}: {properties[field].get('units')} for {unit}"
                      for field, unit in units.items()
                      if field in properties and properties[field].get("units") != unit]  # fmt: skip
    assert wrong == []
