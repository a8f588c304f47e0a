"""Assembling components: the one place that picks each component's driver, runner and store.

Part of the composition root (with the `obsq` command): it may import simulators; services
never branch on simulation, they take a driver. This build has simulated drivers only, so
`--simulate` is required for the hardware components. Fault injection is by name
(`obsq.csc.injections`), each name mapped here onto a named hook of a simulated driver.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from obsq.csc.build import HARDWARE, RUNNABLE
from obsq.csc.component import BaseCsc
from obsq.csc.core.errors import ValidationError
from obsq.csc.database import DatabaseError, Registries, exists
from obsq.csc.injections import INJECTIONS, InjectionError, parse_injections


class CompositionError(ValueError):
    """A component cannot be built as asked (the message says what to change)."""


#: Each injection's hook on the simulated driver it targets (names and help: obsq.csc.injections).
HOOKS: dict[str, Callable[[Any, str], None]] = {
    "lamp-no-strike": lambda d, v: d.fail_next_strikes(int(v or 3)),
    "chiller-alarm": lambda d, v: d.alarm_after_start(float(v or 60)),
    "coolant-flow": lambda d, v: d.restrict_coolant_flow(float(v or 0.4)),
    "lamp-stuck-on": lambda d, v: d.stick_lamp_on(),
    "dome-drift": lambda d, v: d.inject_drift(float(v or 3.0)),
    "filter-stuck": lambda d, v: d.stick_filter_wheel(),
    "readout-failure": lambda d, v: d.fail_next_readouts(int(v or 1)),
}


# Each builder imports its own component only: a component process loads what it uses (the
# camera alone needs numpy and astropy). Each returns the service and the driver injections act on.


def _whitelight(kw: dict[str, Any]) -> tuple[BaseCsc, Any]:
    from obsq.csc.atwhitelight.csc import ATWhiteLightCsc
    from obsq.csc.atwhitelight.sim import SimLamp

    driver = SimLamp(kw["clock"])
    return ATWhiteLightCsc(driver=driver, **kw), driver.sim


def _spectrograph(kw: dict[str, Any]) -> tuple[BaseCsc, Any]:
    from obsq.csc.atspectrograph.csc import ATSpectrographCsc
    from obsq.csc.atspectrograph.sim import SimSpectrograph

    driver = SimSpectrograph(kw["clock"])
    return ATSpectrographCsc(driver=driver, **kw), driver


def _dome(kw: dict[str, Any]) -> tuple[BaseCsc, Any]:
    from obsq.csc.atdome.csc import ATDomeCsc
    from obsq.csc.atdome.sim import SimDome

    driver = SimDome(kw["clock"])
    return ATDomeCsc(driver=driver, **kw), driver


def _mount(kw: dict[str, Any]) -> tuple[BaseCsc, Any]:
    from obsq.csc.atmcs.csc import ATMCSCsc
    from obsq.csc.atmcs.sim import SimMount

    driver = SimMount(kw["clock"])
    return ATMCSCsc(driver=driver, **kw), driver


def _camera(kw: dict[str, Any], registries: Registries) -> tuple[BaseCsc, Any]:
    from obsq.csc.atcamera.csc import ATCameraCsc
    from obsq.csc.atcamera.sim import BusObservatory, SimCamera

    driver = SimCamera(BusObservatory(kw["bus"], kw["clock"], kw.get("root", "obsq")), kw["clock"])
    return ATCameraCsc(driver=driver, data_dir=registries.data_dir, registry=registries.acquired, **kw), driver


def _scheduler(registries: Registries, kw: dict[str, Any]) -> BaseCsc:
    from obsq.csc.clock import utc_now_unix
    from obsq.csc.ocps.repository import Repository
    from obsq.csc.scheduler.csc import SchedulerCsc
    from obsq.csc.scheduler.library import default_policy_path
    from obsq.csc.scheduler.store import SchedulerStore

    repo = registries.data_dir / "repo"

    def calibrations() -> list[Any]:
        """The calibration repository's products (none before the reduction service made one)."""
        if registries.database is None and not (repo / "registry.sqlite3").exists():
            return []
        return Repository(repo, now=utc_now_unix, database=registries.calibration).products()

    def library_due() -> list[Any]:
        """What the calibration policy makes due for the setups of the last 30 days' raws."""
        from obsq.csc.scheduler.library import due_now, read_policy

        policy_file = default_policy_path()
        if policy_file is None:
            return []
        found = due_now(read_policy(policy_file), calibrations(), registries.data_dir / "raw", now_unix=utc_now_unix())
        return found.items

    def flats_source() -> tuple[list[Any], dict[Any, float]]:
        """The acquired images (for the lights) and the flat wizard's trained exposures."""
        import json

        from obsq.csc.acquired import AcquiredImages
        from obsq.csc.scheduler.flats import trained_from

        images = AcquiredImages(registries.acquired).images(imgtype="OBJECT") if exists(registries.acquired) else []
        table = registries.data_dir / "flats" / "trained.json"
        return images, trained_from(json.loads(table.read_text())) if table.is_file() else {}

    store = SchedulerStore(registries.scheduler(kw["index"]))
    return SchedulerCsc(store=store, calibrations=calibrations, library_due=library_due, flats_source=flats_source,
                        **kw)  # fmt: skip


def _device_spectrograph(
    devices: Mapping[str, str], kw: dict[str, Any], registries: Callable[[], Registries]
) -> BaseCsc:
    from obsq.csc.atspectrograph.csc import ATSpectrographCsc
    from obsq.csc.atspectrograph.devices import DeviceSpectrograph

    links: dict[tuple[str, int], Any] = {}  # one connection to each INDI server, shared by its devices
    wheels = [_device_wheel(role, devices[role], kw["clock"], links) for role in ("filter", "disperser")]
    return ATSpectrographCsc(driver=DeviceSpectrograph(*wheels), **kw)


def _wheel_address(role: str, url: str) -> Any:
    """A wheel's address, by its scheme: an AlpacaAddress or an IndiAddress; ValidationError naming the rule."""
    what = f"ATSpectrograph --device {role}"
    if url.startswith("indi://"):
        from obsq.csc.indi.address import parse_address as parse_indi

        return parse_indi(url, what=what)
    if not url.startswith("alpaca://"):
        raise ValidationError(
            f"{what}: {url!r} is neither alpaca://host:port/filterwheel/N nor indi://host:port/Device"
        )
    from obsq.csc.alpaca.address import parse_address

    return parse_address(url, expect="filterwheel", what=what)


def _alpaca_address(component: str, role: str, url: str, device_type: str) -> Any:
    """The address of a device this build drives over Alpaca only; ValidationError naming the rule."""
    from obsq.csc.alpaca.address import parse_address

    what = f"{component} --device {role}"
    if not url.startswith("alpaca://"):
        raise ValidationError(f"{what}: {url!r}: a {device_type} is driven over Alpaca in this build")
    return parse_address(url, expect=device_type, what=what)


def _device_wheel(role: str, url: str, clock: Any, links: dict[tuple[str, int], Any]) -> Any:
    """A wheel driver for `url`, by its scheme: alpaca:// or indi://."""
    kind = "filter" if role == "filter" else "disperser"
    address = _wheel_address(role, url)
    if url.startswith("indi://"):
        from obsq.csc.atspectrograph.indi import IndiWheel
        from obsq.csc.indi.client import IndiConnection

        key = (address.host, address.port)
        links.setdefault(key, IndiConnection(address.host, address.port, clock))
        return IndiWheel(kind, links[key], address.device)
    from obsq.csc.atspectrograph.alpaca import AlpacaWheel

    return AlpacaWheel(kind, address, clock)


def _camera_address(url: str) -> Any:
    """A camera's address, by its scheme: an AlpacaAddress or an IndiAddress; ValidationError naming the rule."""
    if url.startswith("indi://"):
        from obsq.csc.indi.address import parse_address as parse_indi

        return parse_indi(url, what="ATCamera --device camera")
    return _alpaca_address("ATCamera", "camera", url, "camera")


def _device_camera(devices: Mapping[str, str], kw: dict[str, Any], registries: Callable[[], Registries]) -> BaseCsc:
    from obsq.csc.atcamera.csc import ATCameraCsc
    from obsq.csc.atcamera.sim import BusObservatory

    address = _camera_address(devices["camera"])
    observatory = BusObservatory(kw["bus"], kw["clock"], kw.get("root", "obsq"))
    driver: Any
    if devices["camera"].startswith("indi://"):
        from obsq.csc.atcamera.indi import IndiCamera
        from obsq.csc.indi.client import IndiConnection

        driver = IndiCamera(IndiConnection(address.host, address.port, kw["clock"]), address.device, observatory)
    else:
        from obsq.csc.atcamera.alpaca import AlpacaCamera

        driver = AlpacaCamera(address, observatory, kw["clock"])
    found = registries()
    return ATCameraCsc(driver=driver, data_dir=found.data_dir, registry=found.acquired, **kw)


def _mount_address(url: str) -> Any:
    """A mount's address, by its scheme: an AlpacaAddress or an IndiAddress; ValidationError naming the rule."""
    if url.startswith("indi://"):
        from obsq.csc.indi.address import parse_address as parse_indi

        return parse_indi(url, what="ATMCS --device mount")
    return _alpaca_address("ATMCS", "mount", url, "telescope")


def _device_mount(devices: Mapping[str, str], kw: dict[str, Any], _: Callable[[], Registries]) -> BaseCsc:
    from obsq.csc.atmcs.csc import ATMCSCsc

    address = _mount_address(devices["mount"])
    driver: Any
    if devices["mount"].startswith("indi://"):
        from obsq.csc.atmcs.indi import IndiMount
        from obsq.csc.indi.client import IndiConnection

        driver = IndiMount(IndiConnection(address.host, address.port, kw["clock"]), address.device, kw["clock"])
    else:
        from obsq.csc.atmcs.alpaca import AlpacaMount

        driver = AlpacaMount(address, kw["clock"])
    return ATMCSCsc(driver=driver, **kw)


def _dome_address(url: str) -> Any:
    """A dome's address, by its scheme: an AlpacaAddress or an IndiAddress; ValidationError naming the rule."""
    if url.startswith("indi://"):
        from obsq.csc.indi.address import parse_address as parse_indi

        return parse_indi(url, what="ATDome --device dome")
    return _alpaca_address("ATDome", "dome", url, "dome")


def _device_dome(devices: Mapping[str, str], kw: dict[str, Any], _: Callable[[], Registries]) -> BaseCsc:
    from obsq.csc.atdome.csc import ATDomeCsc

    address = _dome_address(devices["dome"])
    driver: Any
    if devices["dome"].startswith("indi://"):
        from obsq.csc.atdome.indi import IndiDome
        from obsq.csc.indi.client import IndiConnection

        driver = IndiDome(IndiConnection(address.host, address.port, kw["clock"]), address.device)
    else:
        from obsq.csc.atdome.alpaca import AlpacaDome

        driver = AlpacaDome(address, kw["clock"])
    return ATDomeCsc(driver=driver, **kw)


def _lamp_addresses(devices: Mapping[str, str]) -> tuple[Any, Any]:
    """The lamp's address (an Alpaca CoverCalibrator or an INDI light panel) and its chiller's (an Alpaca Switch)."""
    chiller = devices.get("chiller")
    if devices["lamp"].startswith("indi://"):
        from obsq.csc.indi.address import parse_address as parse_indi

        if chiller:
            raise ValidationError("ATWhiteLight --device chiller: goes with an Alpaca lamp; an INDI panel has none")
        return parse_indi(devices["lamp"], what="ATWhiteLight --device lamp"), None
    lamp = _alpaca_address("ATWhiteLight", "lamp", devices["lamp"], "covercalibrator")
    return lamp, (_alpaca_address("ATWhiteLight", "chiller", chiller, "switch") if chiller else None)


def _device_lamp(devices: Mapping[str, str], kw: dict[str, Any], _: Callable[[], Registries]) -> BaseCsc:
    from obsq.csc.atwhitelight.csc import ATWhiteLightCsc

    lamp, chiller = _lamp_addresses(devices)
    driver: Any
    if devices["lamp"].startswith("indi://"):
        from obsq.csc.atwhitelight.indi import IndiLamp
        from obsq.csc.indi.client import IndiConnection

        driver = IndiLamp(IndiConnection(lamp.host, lamp.port, kw["clock"]), lamp.device)
    else:
        from obsq.csc.atwhitelight.alpaca import AlpacaLamp

        driver = AlpacaLamp(lamp, chiller, kw["clock"])
    return ATWhiteLightCsc(driver=driver, **kw)


#: The components that drive real devices, the devices each needs (by role), and how it is built.
DEVICE_ROLES: dict[str, dict[str, str]] = {
    "ATSpectrograph": {"filter": "alpaca://HOST:PORT/filterwheel/N (or indi://HOST:PORT/DEVICE)",
                       "disperser": "alpaca://HOST:PORT/filterwheel/N (or indi://HOST:PORT/DEVICE)"},
    "ATCamera": {"camera": "alpaca://HOST:PORT/camera/N (or indi://HOST:PORT/DEVICE)"},
    "ATMCS": {"mount": "alpaca://HOST:PORT/telescope/N (or indi://HOST:PORT/DEVICE)"},
    "ATDome": {"dome": "alpaca://HOST:PORT/dome/N (or indi://HOST:PORT/DEVICE)"},
    "ATWhiteLight": {"lamp": "alpaca://HOST:PORT/covercalibrator/N (or indi://HOST:PORT/DEVICE)",
                     "chiller": "alpaca://HOST:PORT/switch/N (optional)"},
}  # fmt: skip
#: Roles a component may go without (the lamp without a chiller device).
OPTIONAL_ROLES: dict[str, set[str]] = {"ATWhiteLight": {"chiller"}}
_DEVICE_BUILDERS: dict[str, Callable[[Mapping[str, str], dict[str, Any], Callable[[], Registries]], BaseCsc]] = {
    "ATSpectrograph": _device_spectrograph,
    "ATCamera": _device_camera,
    "ATMCS": _device_mount,
    "ATDome": _device_dome,
    "ATWhiteLight": _device_lamp,
}
#: Each component's addresses checked without building it (the devices file at `obsq up`'s door).
_DEVICE_PARSERS: dict[str, Callable[[Mapping[str, str]], object]] = {
    "ATSpectrograph": lambda d: [_wheel_address(role, d[role]) for role in ("filter", "disperser")],
    "ATCamera": lambda d: _camera_address(d["camera"]),
    "ATMCS": lambda d: _mount_address(d["mount"]),
    "ATDome": lambda d: _dome_address(d["dome"]),
    "ATWhiteLight": _lamp_addresses,
}


DEVICES_SCHEMA: dict[str, Any] = json.loads(resources.files("obsq.schemas").joinpath("devices.json").read_text())


def read_devices(path: Path, *, speed: float, inject: Sequence[str] = ()) -> dict[str, dict[str, str]]:
    """The site's devices file: for each component, its devices by role; ValidationError naming the file and rule.

    Checked as each component will check it (the roles, each address parsed, a clock speed of 1, no
    fault injection for a component on real devices), so that `obsq up` refuses it before starting anyone.
    """
    from obsq.csc.core.interface import make_validator
    from obsq.csc.core.yamltext import load_yaml
    from obsq.csc.injections import injections_for

    label = f"devices file {path}"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValidationError(f"{label}: cannot be read ({exc.strerror or exc})") from None
    data = load_yaml(text, label)
    if not isinstance(data, dict):
        raise ValidationError(f"{label}: must map components to their devices, e.g. 'ATCamera: {{camera: URL}}'")
    make_validator(DEVICES_SCHEMA).validate(label, data)
    for name, devices in data.items():
        try:
            _check_devices(name, devices, simulate=False, inject=injections_for(name, list(inject)), speed=speed)
            _DEVICE_PARSERS[name](devices)
        except (CompositionError, ValidationError) as exc:
            raise ValidationError(f"{label}: {exc}") from None
    return data


def _check_devices(
    name: str, devices: Mapping[str, str], *, simulate: bool, inject: list[str], speed: float, device_speed: float = 1.0
) -> None:
    """A component given real devices: it has real drivers, all its roles are named, it runs at their speed.

    Real devices run in real time (`device_speed` 1); obsq's served simulation runs at its own speed.
    """
    if name not in DEVICE_ROLES:
        real = ", ".join(DEVICE_ROLES)
        raise CompositionError(f"{name} has no driver for real devices in this build (those that do: {real})")
    roles = DEVICE_ROLES[name]
    unknown = sorted(set(devices) - set(roles))
    missing = [r for r in roles if r not in devices and r not in OPTIONAL_ROLES.get(name, set())]
    if unknown or missing:
        raise CompositionError(
            f"{name}: --device takes the roles {', '.join(roles)}"
            + (f"; unknown: {', '.join(unknown)}" if unknown else "")
            + (f"; missing: {', '.join(missing)}" if missing else "")
        )
    if simulate:
        raise CompositionError(f"{name}: --device drives a real device; --simulate is for the simulated one")
    if inject:
        raise CompositionError(f"{name}: fault injection (--inject) is for simulated devices, not a real one")
    if speed != device_speed and device_speed == 1.0:
        raise CompositionError(f"{name}: a real device runs in real time: --speed 1, not {speed:g}")
    if speed != device_speed:
        raise CompositionError(f"{name}: its devices run at speed {device_speed:g} (--device-speed); --speed {speed:g}")


def _real_component(
    name: str,
    devices: Mapping[str, str],
    *,
    simulate: bool,
    inject: list[str],
    kw: dict[str, Any],
    registries: Callable[[], Registries],
    device_speed: float = 1.0,
) -> BaseCsc:
    """`name` on its real devices; CompositionError naming what is missing or wrong."""
    if not devices:
        roles = DEVICE_ROLES.get(name, {})
        real = " ".join(
            f"--device {role}={example}" for role, example in roles.items() if role not in OPTIONAL_ROLES.get(name, ())
        )
        raise CompositionError(f"{name}: run it with --simulate" + (f", or name its devices: {real}" if real else ""))
    _check_devices(name, devices, simulate=simulate, inject=inject, speed=kw["clock"].speed, device_speed=device_speed)
    try:
        return _DEVICE_BUILDERS[name](devices, {"simulation_mode": 0, **kw}, registries)
    except ValidationError as exc:
        raise CompositionError(str(exc)) from None


_HARDWARE_BUILDERS: dict[str, Callable[[dict[str, Any]], tuple[BaseCsc, Any]]] = {
    "ATWhiteLight": _whitelight,
    "ATSpectrograph": _spectrograph,
    "ATDome": _dome,
    "ATMCS": _mount,
}


def build_component(
    name: str,
    *,
    index: int,
    simulate: bool,
    inject: list[str],
    data_dir: Path,
    database: str | None = None,
    broker_url: str = "",
    epoch: float | None = None,
    ca_file: str | None = None,
    child_env: Mapping[str, str] | None = None,
    devices: Mapping[str, str] | None = None,
    device_speed: float = 1.0,
    **kwargs: Any,
) -> BaseCsc:
    """The component `name` with its driver; `kwargs` go to BaseCsc (bus, clock, root, ...).

    Its registries are SQLite files in `data_dir`, or tables in `database` (a URL) if one is given.
    `devices` names its real devices by role (`{"filter": "alpaca://host:port/filterwheel/0", ...}`);
    `device_speed` is their clock speed: 1 for real devices, the served simulation's (`obsq alpaca serve`).
    """

    def open_registries() -> Registries:
        try:
            return Registries.at(data_dir, database)
        except DatabaseError as exc:
            raise CompositionError(f"--database: {exc}") from None

    if devices or (name in HARDWARE and not simulate):
        return _real_component(name, devices or {}, simulate=simulate, inject=inject, kw={"index": index, **kwargs},
                               registries=open_registries, device_speed=device_speed)  # fmt: skip
    try:
        injections = parse_injections(inject)
    except InjectionError as exc:
        raise CompositionError(str(exc)) from None
    wrong = [n for n, _ in injections if INJECTIONS[n].component != name]
    if wrong:
        raise CompositionError(f"injection {wrong[0]!r} is for {INJECTIONS[wrong[0]].component}, not {name}")
    if name not in RUNNABLE:
        raise CompositionError(f"no component service for {name!r} in this build; runnable: {', '.join(RUNNABLE)}")
    registries = open_registries()
    mode = 1 if simulate else 0
    driver: Any = None
    if name == "ATCamera":
        csc, driver = _camera({"simulation_mode": mode, "index": index, **kwargs}, registries)
    elif name in HARDWARE:
        csc, driver = _HARDWARE_BUILDERS[name]({"simulation_mode": mode, "index": index, **kwargs})
    elif name == "OCPS":
        from obsq.csc.component.ledger import SqliteLedgerStore
        from obsq.csc.ocps.csc import OCPSCsc

        index = index or 1
        ledger = SqliteLedgerStore(data_dir / "repo" / f"OCPS-{index}-commands.sqlite3")
        csc = OCPSCsc(
            data_dir=data_dir, database=database, simulation_mode=mode, index=index, ledger_store=ledger, **kwargs
        )
    elif name == "ScriptQueue":
        from obsq.csc.component.ledger import SqliteLedgerStore
        from obsq.csc.scriptqueue.csc import ScriptQueueCsc
        from obsq.csc.scriptqueue.runner import ProcessRunner
        from obsq.csc.scriptqueue.store import DatabaseQueueStore

        index = index or 2
        runner = ProcessRunner(
            broker=broker_url, root=kwargs.get("root", "obsq"), speed=kwargs["clock"].speed, epoch=epoch,
            ca_file=ca_file, log_dir=data_dir / "logs" / "scripts", env=dict(child_env or {}),
        )  # fmt: skip
        store = DatabaseQueueStore(registries.queue(index), f"ScriptQueue:{index}")
        ledger = SqliteLedgerStore(data_dir / "scriptqueue" / f"ScriptQueue-{index}-commands.sqlite3")
        csc = ScriptQueueCsc(runner=runner, store=store, index=index, ledger_store=ledger, **kwargs)
    elif name == "Scheduler":
        csc = _scheduler(registries, {"index": index or 2, **kwargs})
    else:
        from obsq.csc.testcsc import TestCsc

        csc = TestCsc(simulation_mode=mode, index=index or 1, **kwargs)
    for injection, value in injections:
        HOOKS[injection](driver, value)  # only hardware has injections (checked above)
    return csc
