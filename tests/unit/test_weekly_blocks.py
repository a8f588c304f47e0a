"""What the weekly reads from the blocks it runs: the PTCs they ask for, and whether they ask for masters."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from obsq.csc.scriptqueue.blocks import block_folders, read_block
from obsq.csc.weekly.summary import masters_asked, processing_notes, ptc_requests, unbuilt_masters


def take(times: list[float], **parameters: Any) -> dict[str, Any]:
    return {"name": "auxtel/take_image_latiss.py", "standard": True,
            "parameters": {"image_type": "FLAT", "exp_times": times, **parameters}}  # fmt: skip


def test_the_shipped_block_asks_for_one_ptc() -> None:
    data, _ = read_block("BLOCK-295", block_folders())
    (request,) = ptc_requests([data])
    assert (request.program, request.reason, request.filter) == ("BLOCK-295", "weekly_PTC", "SDSSr_65mm")
    assert len(request.exp_times) == 30


def test_a_ptc_is_flats_in_pairs_at_four_levels_at_least() -> None:
    block = {"program": "BLOCK-T1", "scripts": [
        take([1, 1, 2, 2, 3, 3, 4, 4], reason="anything at all", filter="g"),
        take([1, 1, 2, 2, 3, 3]),  # three levels
        take([1, 2, 2, 3, 3, 4, 4, 5]),  # not in pairs
        take([1, 1, 2, 2, 3, 3, 4, 4], image_type="BIAS"),
        {"name": "auxtel/take_image_latiss.py", "standard": True, "parameters": {"exp_times": "$t"}},
    ]}  # fmt: skip
    (request,) = ptc_requests([block])
    assert (request.program, request.reason, request.filter, sorted(request.exp_times)) == (
        "BLOCK-T1", "anything at all", "g", [1.0, 2.0, 3.0, 4.0]
    )  # fmt: skip


def test_rubins_block_asks_for_no_masters_and_says_so() -> None:
    rubin = Path(__file__).resolve().parents[1] / "data" / "rubin-auxtel-blocks"  # Rubin's files, as they are
    shipped, _ = read_block("BLOCK-295", block_folders())
    assert processing_notes([shipped]) == [
        "BLOCK-295: 5 of 5 calibration sets build masters (generate_calibrations true)"
    ]
    if rubin.is_dir():
        data = json.loads(next(rubin.glob("block-295-*.json")).read_text())
        (note,) = processing_notes([data])
        assert note.startswith("BLOCK-295 asks for no processing: its 2 make_latiss_calibrations scripts")
        (request,) = ptc_requests([data])
        assert request.reason == "daily_PTC"


def test_the_masters_the_shipped_block_asks_for_are_counted_against_those_built() -> None:
    data, _ = read_block("BLOCK-295", block_folders())
    asked = masters_asked([data])
    assert sorted(set(asked)) == ["BIAS", "DARK", "FLAT"]
    built = [{"type": kind.lower()} for kind in asked]
    assert unbuilt_masters(asked, built) == []
    lost_bias = [m for m in built if m["type"] != "bias"] + [{"type": "bias"}] * (asked.count("BIAS") - 1)
    assert unbuilt_masters(asked, lost_bias) == [f"BIAS: 1 of {asked.count('BIAS')} not built"]
    rubin = {"scripts": [{"name": "auxtel/make_latiss_calibrations.py", "parameters": {"script_mode": "BIAS"}}]}
    assert masters_asked([rubin]) == []  # generate_calibrations false: no master asked for
