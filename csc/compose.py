"""Assembling components: the one place that picks each component's driver, runner and store.

Part of the composition root (with the `obsq` command): it may import simulators; services
never branch on simulation, they take a driver. This build has simulated drivers only, so
`--simulate` is required for the hardware components. Fault injection is by name
(`obsq.csc.injections`), each name mapped here onto a named hook of a simulated driver.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from obsq.csc.atcamera.csc import ATCameraCsc
from obsq.csc.atcamera.sim import BusObservatory, SimCamera
from obsq.csc.atdome.csc import ATDomeCsc
from obsq.csc.atdome.sim import SimDome
from obsq.csc.atmcs.csc import ATMCSCsc
from obsq.csc.atmcs.sim import SimMount
from obsq.csc.atspectrograph.csc import ATSpectrographCsc
from obsq.csc.atspectrograph.sim import SimSpectrograph
from obsq.csc.atwhitelight.csc import ATWhiteLightCsc
from obsq.csc.atwhitelight.sim import SimWhiteLight
from obsq.csc.build import HARDWARE, RUNNABLE
from obsq.csc.component import BaseCsc
from obsq.csc.injections import INJECTIONS, InjectionError, parse_injections
from obsq.csc.ocps.csc import OCPSCsc
from obsq.csc.scriptqueue.csc import ScriptQueueCsc
from obsq.csc.scriptqueue.runner import ProcessRunner
from obsq.csc.scriptqueue.store import SqliteQueueStore
from obsq.csc.testcsc import TestCsc


class CompositionError(ValueError):
    """A component cannot be built as asked (the message says what to change)."""


#: Each injection's hook on the simulated driver it targets (names and help: obsq.csc.injections).
HOOKS: dict[str, Callable[[Any, str], None]] = {
    "lamp-no-strike": lambda d, v: d.fail_next_strikes(int(v or 3)),
    "chiller-alarm": lambda d, v: d.alarm_after_start(float(v or 60)),
    "lamp-stuck-on": lambda d, v: d.stick_lamp_on(),
    "dome-drift": lambda d, v: d.inject_drift(float(v or 3.0)),
    "filter-stuck": lambda d, v: d.stick_filter_wheel(),
    "readout-failure": lambda d, v: d.fail_next_readouts(int(v or 1)),
}


#: Each hardware component's simulated driver, made from the service's keyword arguments (bus, clock, root).
_DRIVERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "ATWhiteLight": lambda kw: SimWhiteLight(),
    "ATSpectrograph": lambda kw: SimSpectrograph(),
    "ATDome": lambda kw: SimDome(),
    "ATMCS": lambda kw: SimMount(),
    "ATCamera": lambda kw: SimCamera(BusObservatory(kw["bus"], kw["clock"], kw.get("root", "obsq"))),
}
_HARDWARE_SERVICES: dict[str, Callable[..., BaseCsc]] = {
    "ATWhiteLight": ATWhiteLightCsc,
    "ATSpectrograph": ATSpectrographCsc,
    "ATDome": ATDomeCsc,
    "ATMCS": ATMCSCsc,
    "ATCamera": ATCameraCsc,
}


def build_component(
    name: str,
    *,
    index: int,
    simulate: bool,
    inject: list[str],
    data_dir: Path,
    broker_url: str = "",
    epoch: float | None = None,
    ca_file: str | None = None,
    **kwargs: Any,
) -> BaseCsc:
    """The component `name` with its driver; `kwargs` go to BaseCsc (bus, clock, root, ...)."""
    if name in HARDWARE and not simulate:
        raise CompositionError(f"{name} has only a simulated driver in this build: run it with --simulate")
    try:
        injections = parse_injections(inject)
    except InjectionError as exc:
        raise CompositionError(str(exc)) from None
    wrong = [n for n, _ in injections if INJECTIONS[n].component != name]
    if wrong:
        raise CompositionError(f"injection {wrong[0]!r} is for {INJECTIONS[wrong[0]].component}, not {name}")
    if name not in RUNNABLE:
        raise CompositionError(f"no component service for {name!r} in this build; runnable: {', '.join(RUNNABLE)}")
    mode = 1 if simulate else 0
    driver: Any = None
    if name in HARDWARE:
        driver = _DRIVERS[name](kwargs)
        service = _HARDWARE_SERVICES[name]
        extra = {"data_dir": data_dir} if name == "ATCamera" else {}
        csc: BaseCsc = service(driver=driver, simulation_mode=mode, index=index, **extra, **kwargs)
    elif name == "OCPS":
        csc = OCPSCsc(data_dir=data_dir, simulation_mode=mode, index=index or 1, **kwargs)
    elif name == "ScriptQueue":
        index = index or 2
        runner = ProcessRunner(
            broker=broker_url, root=kwargs.get("root", "obsq"), speed=kwargs["clock"].speed, epoch=epoch,
            ca_file=ca_file, log_dir=data_dir / "logs" / "scripts",
        )  # fmt: skip
        store = SqliteQueueStore(data_dir / "scriptqueue" / f"ScriptQueue-{index}.sqlite3")
        csc = ScriptQueueCsc(runner=runner, store=store, index=index, **kwargs)
    else:
        csc = TestCsc(simulation_mode=mode, index=index or 1, **kwargs)
    for injection, value in injections:
        HOOKS[injection](driver, value)  # only hardware has injections (checked above)
    return csc
