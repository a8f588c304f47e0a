"""What a weekly run produced: images per set (the camera's registry), the lamp's end state, the PTC."""

from __future__ import annotations

from collections import Counter
from typing import Any

from obsq.csc.acquired import AcquiredImages
from obsq.csc.atwhitelight.model import LampBasicState
from obsq.csc.bus.base import Bus
from obsq.csc.clock import Clock
from obsq.csc.component import AckError, Remote
from obsq.csc.core.errors import ExpectedError
from obsq.csc.core.states import State
from obsq.csc.database import exists
from obsq.scripts.ocps import Ocps

#: The reason BLOCK-295's take_image_latiss gives its PTC flats.
PTC_REASON = "weekly_PTC"


def image_summary(registry: str) -> list[dict[str, Any]]:
    """Images per type, filter, grating and exposure time in the registry (a path or URL)."""
    if not exists(registry):
        return []
    counts = Counter((i.imgtype, i.filter, i.grating, i.exptime) for i in AcquiredImages(registry).images())
    return [
        {"imgtype": t, "filter": f, "grating": g, "exptime": e, "count": n}
        for (t, f, g, e), n in sorted(counts.items())
    ]


def ptc_inputs(registry: str, reason: str = PTC_REASON) -> list[str]:
    """The PTC flats of the run (take_image_latiss with BLOCK-295's reason), in sequence order."""
    if not exists(registry):
        return []
    return [i.path for i in AcquiredImages(registry).images(reason=reason)]


async def run_ptc(bus: Bus, root: str, clock: Clock, inputs: list[str]) -> str:
    """The PTC of the run's flat pairs, through OCPS:1; a line saying what happened."""
    if not inputs:
        return "PTC: no PTC flats in this run"
    async with Remote(bus, "OCPS:1", clock=clock, root=root) as remote:
        try:
            result = await Ocps(remote).run("cpPtc", {"inputs": inputs, "force": True}, timeout_s=600)
        except (ExpectedError, AckError) as exc:
            return f"PTC: {exc}"
    return f"PTC: product {result['product']} from {len(inputs)} flats"


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
