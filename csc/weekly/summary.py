"""What a weekly run asks of the services at its end: the lamp's state, the PTC and the report (OCPS:1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from obsq.csc.atwhitelight.model import LampBasicState
from obsq.csc.bus.base import Bus
from obsq.csc.clock import Clock
from obsq.csc.component import AckError, Remote
from obsq.csc.core.errors import ExpectedError
from obsq.csc.core.states import State
from obsq.csc.reduction.ptc import MIN_LEVELS
from obsq.scripts.latiss import CALIBRATION_MODES
from obsq.scripts.ocps import Ocps


@dataclass(frozen=True)
class PtcRequest:
    """Flats a block asks for as a PTC: a take_image_latiss of FLATs whose exposure times come in pairs."""

    program: str
    reason: str
    filter: str
    grating: str
    exp_times: frozenset[float]


def ptc_requests(blocks: list[dict[str, Any]]) -> list[PtcRequest]:
    """Each PTC the blocks ask for, found by what the script takes (not by a reason string)."""
    found = []
    for data in blocks:
        for script in data.get("scripts", []):
            parameters = script.get("parameters") or {}
            times = parameters.get("exp_times")
            if not str(script.get("name", "")).endswith("take_image_latiss.py") or not isinstance(times, list):
                continue
            if str(parameters.get("image_type", "")).upper() != "FLAT" or len(times) % 2:
                continue
            pairs = list(zip(times[0::2], times[1::2], strict=True))
            if all(a == b for a, b in pairs) and len({a for a, _ in pairs}) >= MIN_LEVELS:
                found.append(PtcRequest(
                    program=str(parameters.get("program", data.get("program", ""))),
                    reason=str(parameters.get("reason", "")), filter=str(parameters.get("filter", "")),
                    grating=str(parameters.get("grating", "")), exp_times=frozenset(float(t) for t in times),
                ))  # fmt: skip
    return found


def processing_notes(blocks: list[dict[str, Any]]) -> list[str]:
    """What the blocks ask the reduction service for, in words: above all when they ask for nothing."""
    notes = []
    for data in blocks:
        calibrations = [s for s in data.get("scripts", []) if str(s.get("name", "")).endswith(
            "make_latiss_calibrations.py")]  # fmt: skip
        built = [s for s in calibrations if (s.get("parameters") or {}).get("generate_calibrations") is True]
        if calibrations and not built:
            notes.append(
                f"{data.get('program', '?')} asks for no processing: its {len(calibrations)} "
                "make_latiss_calibrations scripts leave generate_calibrations false (Rubin's default), so the "
                "images are taken and counted but no master is built"
            )
        elif calibrations:
            notes.append(f"{data.get('program', '?')}: {len(built)} of {len(calibrations)} calibration sets "
                         "build masters (generate_calibrations true)")  # fmt: skip
    return notes


def masters_asked(blocks: list[dict[str, Any]]) -> list[str]:
    """The master types the blocks ask for, one entry per master.

    Each image type of a make_latiss_calibrations with generate_calibrations true is one master.
    """
    asked = []
    for data in blocks:
        for script in data.get("scripts", []):
            parameters = script.get("parameters") or {}
            if str(script.get("name", "")).endswith("make_latiss_calibrations.py") and parameters.get(
                "generate_calibrations"
            ):
                asked += CALIBRATION_MODES.get(str(parameters.get("script_mode", "")), [])
    return asked


def unbuilt_masters(asked: list[str], built: list[dict[str, Any]]) -> list[str]:
    """What the blocks asked for and the run did not build, as "BIAS: 1 of 1 missing" lines."""
    lines = []
    for kind in sorted(set(asked)):
        wanted, made = asked.count(kind), sum(1 for m in built if str(m.get("type", "")).upper() == kind)
        if made < wanted:
            lines.append(f"{kind}: {wanted - made} of {wanted} not built")
    return lines


def ptc_select(request: PtcRequest, groupids: list[str]) -> dict[str, Any]:
    """The flats of a PTC request as OCPS:1 selects them from its registry: the run's group ids, the request."""
    select: dict[str, Any] = {"exptimes": sorted(request.exp_times), "groupids": groupids}
    for column in ("program", "reason", "filter", "grating"):
        if getattr(request, column):
            select[column] = getattr(request, column)
    return select


async def run_ptc(bus: Bus, root: str, clock: Clock, select: dict[str, Any]) -> str:
    """The PTC of the run's flat pairs, through OCPS:1 (it selects them from its registry); a line on what happened."""
    async with Remote(bus, "OCPS:1", clock=clock, root=root) as remote:
        try:
            result = await Ocps(remote).run("cpPtc", {"select": select, "force": True}, timeout_s=600)
        except (ExpectedError, AckError) as exc:
            none = "no flats in the acquired-images registry" in str(exc)
            return "PTC: no PTC flats in this run" if none else f"PTC: {exc}"
    return f"PTC: product {result['product']} from {result['n_flats']} flats"


async def run_report(
    bus: Bus, root: str, clock: Clock, *, since_unix: float, groupids: list[str], summary: dict[str, Any]
) -> dict[str, Any]:
    """The run's images, verification, masters, PTC and report, as OCPS:1 collects and writes them.

    ExpectedError naming why when the reduction service cannot account for the run.
    """
    config = {"since": since_unix, "groupids": groupids, "summary": summary}
    async with Remote(bus, "OCPS:1", clock=clock, root=root) as remote:
        try:
            return await Ocps(remote).run("cpReport", config, timeout_s=600)
        except AckError as exc:
            raise ExpectedError(f"OCPS:1 cannot report on the run: {exc.ack.result.removeprefix('Failed: ')}") from None


async def lamp_state(bus: Bus, root: str, clock: Clock) -> dict[str, str]:
    """ATWhiteLight's summary state and lamp state as the run ends."""
    async with Remote(bus, "ATWhiteLight", clock=clock, root=root) as lamp:
        try:
            state = State((await lamp.event("summaryState").aget(timeout_s=5))["summaryState"]).name
            basic = (await lamp.event("lampState").aget(timeout_s=5))["basicState"]
        except TimeoutError:
            return {"summaryState": "unknown", "lamp": "unknown"}
    try:
        name = LampBasicState(basic).name
    except ValueError:
        name = str(basic)
    return {"summaryState": state, "lamp": name}
