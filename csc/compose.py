"""Assembling components: the one place that picks each component's hardware driver.

Part of the composition root (with cli.py): it may import simulators; services never
branch on simulation. This build has simulated drivers only, so `--simulate` is required
for the hardware components. Fault injection is by name (`--inject NAME[=VALUE]`), each
name mapped to a documented hook of a simulator:

| name | component | effect |
| --- | --- | --- |
| lamp-no-strike[=N] | ATWhiteLight | the next N strikes (default 3) give no light |
| chiller-alarm[=S] | ATWhiteLight | a chiller alarm S clock seconds (default 60) after the chiller starts |
| lamp-stuck-on | ATWhiteLight | the lamp keeps its light when turned off |
| dome-drift[=DEG] | ATDome | the encoder slips DEG degrees (default 3) in the next move: the screen ends misaligned |
| filter-stuck | ATSpectrograph | the filter wheel's next change never arrives |
| readout-failure[=N] | ATCamera | the next N readouts (default 1) fail |
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from obsq.csc.atcamera.csc import ATCameraCsc
from obsq.csc.atcamera.sim import BusObservatory, SimCamera
from obsq.csc.atdome.csc import ATDomeCsc
from obsq.csc.atdome.model import DomeModel
from obsq.csc.atmcs.csc import ATMCSCsc
from obsq.csc.atspectrograph.csc import ATSpectrographCsc
from obsq.csc.atwhitelight.csc import ATWhiteLightCsc
from obsq.csc.atwhitelight.sim import SimWhiteLight
from obsq.csc.component import BaseCsc
from obsq.csc.ocps.csc import OCPSCsc
from obsq.csc.scriptqueue.csc import ScriptLauncher, ScriptQueueCsc
from obsq.csc.testcsc import TestCsc

#: The simulated auxiliary telescope, in the order `obsq up` starts it.
TELESCOPE = ("ATWhiteLight", "ATSpectrograph", "ATDome", "ATMCS", "ATCamera")
HARDWARE = set(TELESCOPE)


class CompositionError(ValueError):
    """A component cannot be built as asked (the message says what to change)."""


@dataclass(frozen=True)
class Injection:
    """A named fault: which component's simulator it targets and the hook that causes it."""

    component: str
    apply: Callable[[Any, str], None]
    help: str


INJECTIONS: dict[str, Injection] = {
    "lamp-no-strike": Injection(
        "ATWhiteLight", lambda d, v: d.fail_next_strikes(int(v or 3)), "the next N strikes fail"
    ),
    "chiller-alarm": Injection(
        "ATWhiteLight", lambda d, v: d.alarm_after_start(float(v or 60)), "chiller alarm S s after start"
    ),
    "lamp-stuck-on": Injection("ATWhiteLight", lambda d, v: d.stick_lamp_on(), "lamp stays lit when turned off"),
    "dome-drift": Injection("ATDome", lambda d, v: d.inject_drift(float(v or 3.0)), "encoder off by DEG"),
    "filter-stuck": Injection("ATSpectrograph", lambda d, v: d.stick_filter_wheel(), "filter wheel never arrives"),
    "readout-failure": Injection("ATCamera", lambda d, v: d.fail_next_readouts(int(v or 1)), "next N readouts fail"),
}


def parse_injections(texts: list[str]) -> list[tuple[str, str]]:
    """`NAME[=VALUE]` strings, checked against INJECTIONS."""
    parsed = []
    for text in texts:
        name, _, value = text.partition("=")
        if name not in INJECTIONS:
            raise CompositionError(f"unknown injection {name!r}; known: {', '.join(INJECTIONS)}")
        parsed.append((name, value))
    return parsed


def injections_for(component: str, texts: list[str]) -> list[str]:
    """The `--inject` arguments that concern `component`."""
    return [
        t
        for t, (name, _) in zip(texts, parse_injections(texts), strict=True)
        if INJECTIONS[name].component == component
    ]


def build_component(
    name: str,
    *,
    index: int,
    simulate: bool,
    inject: list[str],
    data_dir: Path,
    broker_url: str = "",
    epoch: float | None = None,
    **kwargs: Any,
) -> BaseCsc:
    """The component `name` with its driver; `kwargs` go to BaseCsc (bus, clock, root, ...)."""
    if name in HARDWARE and not simulate:
        raise CompositionError(f"{name} has only a simulated driver in this build: run it with --simulate")
    mode = 1 if simulate else 0
    injections = parse_injections(inject)
    wrong = [n for n, _ in injections if INJECTIONS[n].component != name]
    if wrong:
        raise CompositionError(f"injection {wrong[0]!r} is for {INJECTIONS[wrong[0]].component}, not {name}")
    csc: BaseCsc
    target: Any
    if name == "ATWhiteLight":
        target = SimWhiteLight()
        csc = ATWhiteLightCsc(driver=target, simulation_mode=mode, index=index, **kwargs)
    elif name == "ATSpectrograph":
        csc = target = ATSpectrographCsc(simulation_mode=mode, index=index, **kwargs)
    elif name == "ATDome":
        target = DomeModel()
        csc = ATDomeCsc(model=target, simulation_mode=mode, index=index, **kwargs)
    elif name == "ATMCS":
        csc = target = ATMCSCsc(simulation_mode=mode, index=index, **kwargs)
    elif name == "ATCamera":
        target = SimCamera(BusObservatory(kwargs["bus"], kwargs["clock"], kwargs.get("root", "obsq")))
        csc = ATCameraCsc(driver=target, data_dir=data_dir, simulation_mode=mode, index=index, **kwargs)
    elif name == "OCPS":
        csc = target = OCPSCsc(data_dir=data_dir, simulation_mode=mode, index=index or 1, **kwargs)
    elif name == "ScriptQueue":
        index = index or 2
        launcher = ScriptLauncher(
            broker=broker_url, root=kwargs.get("root", "obsq"), speed=kwargs["clock"].speed, epoch=epoch,
            log_dir=data_dir / "logs" / "scripts",
        )  # fmt: skip
        store = data_dir / "scriptqueue" / f"ScriptQueue-{index}.sqlite3"
        csc = target = ScriptQueueCsc(launcher=launcher, store_path=store, index=index, **kwargs)
    elif name == "Test":
        csc = target = TestCsc(simulation_mode=mode, index=index or 1, **kwargs)
    else:
        raise CompositionError(
            f"no component service for {name!r} in this build; "
            f"runnable: Test, OCPS, ScriptQueue, {', '.join(TELESCOPE)}"
        )
    for injection, value in injections:
        INJECTIONS[injection].apply(target, value)
    return csc
