"""The composition root: drivers chosen once, fault injections by name, clear refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from obsq.csc.atcamera.alpaca import AlpacaCamera
from obsq.csc.atcamera.csc import ATCameraCsc
from obsq.csc.atcamera.indi import IndiCamera
from obsq.csc.atdome.csc import ATDomeCsc
from obsq.csc.atdome.sim import SimDome
from obsq.csc.atspectrograph.alpaca import AlpacaWheel
from obsq.csc.atspectrograph.csc import ATSpectrographCsc
from obsq.csc.atspectrograph.devices import DeviceSpectrograph
from obsq.csc.atspectrograph.indi import IndiWheel
from obsq.csc.atwhitelight.csc import ATWhiteLightCsc
from obsq.csc.build import HARDWARE
from obsq.csc.bus.memory import MemoryBroker
from obsq.csc.clock import LoopClock, ManualClock
from obsq.csc.compose import CompositionError, build_component, read_devices
from obsq.csc.core.errors import ValidationError
from obsq.csc.injections import injections_for


def build(name: str, inject: list[str], simulate: bool = True) -> object:
    return build_component(
        name, index=0, simulate=simulate, inject=inject, data_dir=Path("unused"), bus=MemoryBroker().client(),
        clock=ManualClock(),
    )  # fmt: skip


def test_injections_reach_the_simulators() -> None:
    dome = build("ATDome", ["dome-drift=2.5"])
    assert isinstance(dome, ATDomeCsc)
    assert isinstance(dome.driver, SimDome)
    assert dome.driver.model.pending_slip_deg == 2.5
    lamp = build("ATWhiteLight", ["lamp-no-strike=2", "chiller-alarm=10"])
    assert isinstance(lamp, ATWhiteLightCsc)
    lamp.driver.sim.start_chiller(100.0)
    assert lamp.driver.sim.chiller_status(105.0).alarms is False
    assert lamp.driver.sim.chiller_status(110.0).alarms is True


def test_refusals_name_the_problem() -> None:
    with pytest.raises(CompositionError, match="unknown injection 'dome-wobble'"):
        build("ATDome", ["dome-wobble"])
    with pytest.raises(CompositionError, match="injection 'dome-drift' is for ATDome, not ATCamera"):
        build("ATCamera", ["dome-drift"])
    with pytest.raises(
        CompositionError,
        match=r"ATWhiteLight: run it with --simulate, or name its devices: --device lamp=alpaca://\S+ \(or indi:\S+\)$",
    ):
        build("ATWhiteLight", [], simulate=False)
    with pytest.raises(
        CompositionError,
        match=r"ATDome: run it with --simulate, or name its devices: --device dome=alpaca://HOST:PORT/",
    ):
        build("ATDome", [], simulate=False)
    with pytest.raises(
        CompositionError,
        match=r"ATMCS: run it with --simulate, or name its devices: --device mount=alpaca://HOST:PORT/telescope/N \(",
    ):
        build("ATMCS", [], simulate=False)
    with pytest.raises(
        CompositionError, match=r"ATSpectrograph: run it with --simulate, or name its devices: --device filter="
    ):
        build("ATSpectrograph", [], simulate=False)


WHEELS = {"filter": "alpaca://127.0.0.1:11111/filterwheel/0", "disperser": "alpaca://127.0.0.1:11111/filterwheel/1"}


def with_devices(name: str, devices: dict[str, str], *, inject: tuple[str, ...] = (), speed: float = 1.0) -> object:
    return build_component(
        name, index=0, simulate=False, inject=list(inject), data_dir=Path("unused"), bus=MemoryBroker().client(),
        clock=LoopClock(speed), devices=devices,
    )  # fmt: skip


def test_a_component_on_real_devices_is_built_with_its_alpaca_driver() -> None:
    spectrograph = with_devices("ATSpectrograph", WHEELS)
    assert isinstance(spectrograph, ATSpectrographCsc)
    assert isinstance(spectrograph.driver, DeviceSpectrograph)
    assert isinstance(spectrograph.driver.filter_wheel, AlpacaWheel)
    assert spectrograph.driver.filter_wheel.device == WHEELS["filter"]
    mixed = with_devices("ATSpectrograph", {**WHEELS, "disperser": "indi://127.0.0.1/Filter Simulator"})
    assert isinstance(mixed, ATSpectrographCsc)
    assert isinstance(mixed.driver.disperser_wheel, IndiWheel)
    assert mixed.driver.disperser_wheel.device == "indi://127.0.0.1:7624/Filter Simulator"


@pytest.mark.parametrize(
    ("name", "devices", "extra", "match"),
    [
        ("Scheduler", {"lamp": "alpaca://h/covercalibrator/0"}, {},
         "Scheduler has no driver for real devices in this build"),
        ("ATWhiteLight", {"lamp": "indi://h/Light Panel Simulator", "chiller": "alpaca://h/switch/0"}, {},
         "ATWhiteLight --device chiller: goes with an Alpaca lamp; an INDI panel has none"),
        ("ATWhiteLight", {"chiller": "alpaca://h/switch/0"}, {},
         "ATWhiteLight: --device takes the roles lamp, chiller; missing: lamp"),
        ("ATMCS", {"mount": "indi://h:99999/Telescope Simulator"}, {}, "ATMCS --device mount"),
        ("ATDome", {"dome": "indi://h:x/Dome Simulator"}, {}, "ATDome --device dome"),
        ("ATMCS", {"mount": "alpaca://h/camera/0"}, {}, "'alpaca://h/camera/0' is a camera, not a telescope"),
        ("ATCamera", {"camera": "alpaca://h/filterwheel/0"}, {}, "'alpaca://h/filterwheel/0' is a filterwheel, not"),
        ("ATSpectrograph", {"filter": WHEELS["filter"]}, {}, "takes the roles filter, disperser; missing: disperser"),
        ("ATSpectrograph", {**WHEELS, "lens": "x"}, {}, "unknown: lens"),
        ("ATSpectrograph", WHEELS, {"speed": 600.0}, "a real device runs in real time: --speed 1, not 600"),
        ("ATSpectrograph", WHEELS, {"inject": ("filter-stuck",)}, r"fault injection \(--inject\) is for simulated"),
        ("ATSpectrograph", {**WHEELS, "disperser": "alpaca://h/camera/0"}, {},
         "ATSpectrograph --device disperser: 'alpaca://h/camera/0' is a camera, not a filterwheel"),
        ("ATSpectrograph", {**WHEELS, "filter": "indi://h:7624/"}, {}, "'indi://h:7624/' names no device"),
        ("ATSpectrograph", {**WHEELS, "filter": "ascom:wheel"}, {}, "is neither alpaca://host:port/filterwheel/N"),
    ],
)  # fmt: skip
def test_real_devices_are_refused_at_the_door_naming_the_rule(
    name: str, devices: dict[str, str], extra: dict[str, object], match: str
) -> None:
    with pytest.raises(CompositionError, match=match):
        with_devices(name, devices, **extra)  # type: ignore[arg-type]


def test_up_hands_each_component_its_own_injections() -> None:
    texts = ["dome-drift=3", "readout-failure", "lamp-no-strike=1"]
    assert {name: injections_for(name, texts) for name in HARDWARE} == {
        "ATWhiteLight": ["lamp-no-strike=1"],
        "ATSpectrograph": [],
        "ATDome": ["dome-drift=3"],
        "ATMCS": [],
        "ATCamera": ["readout-failure"],
    }


def test_a_camera_on_an_alpaca_device(tmp_path: Path) -> None:
    camera = build_component(
        "ATCamera", index=0, simulate=False, inject=[], data_dir=tmp_path, bus=MemoryBroker().client(),
        clock=LoopClock(), devices={"camera": "alpaca://127.0.0.1:11111/camera/0"},
    )  # fmt: skip
    assert isinstance(camera, ATCameraCsc)
    assert isinstance(camera.driver, AlpacaCamera)
    indi = build_component(
        "ATCamera", index=0, simulate=False, inject=[], data_dir=tmp_path, bus=MemoryBroker().client(),
        clock=LoopClock(), devices={"camera": "indi://127.0.0.1/CCD Simulator"},
    )  # fmt: skip
    assert isinstance(indi, ATCameraCsc)
    assert isinstance(indi.driver, IndiCamera)
    assert indi.driver.device == "indi://127.0.0.1:7624/CCD Simulator"
    with pytest.raises(CompositionError, match="a camera is driven over Alpaca in this build"):
        build_component(
            "ATCamera", index=0, simulate=False, inject=[], data_dir=tmp_path, bus=MemoryBroker().client(),
            clock=LoopClock(), devices={"camera": "http://127.0.0.1/camera/0"},
        )  # fmt: skip


def test_the_example_devices_file_is_read() -> None:
    example = Path(__file__).resolve().parents[2] / "deploy" / "devices.example.yaml"
    devices = read_devices(example, speed=1.0)
    assert devices["ATSpectrograph"]["disperser"] == "indi://192.168.1.21:7624/Filter Simulator"
    assert set(devices) == {"ATSpectrograph", "ATCamera", "ATMCS", "ATDome", "ATWhiteLight"}


@pytest.mark.parametrize(
    ("text", "options", "match"),
    [
        ("- a list", {}, "must map components to their devices"),
        ("Scheduler: {lamp: alpaca://h/covercalibrator/0}", {}, "field 'Scheduler' is not allowed"),
        ("ATDome: {dome: alpaca://h/dome/0, shutter: alpaca://h/dome/1}", {}, "field 'ATDome/shutter' is not allowed"),
        ("ATCamera: {}", {}, "'camera' is a required property|camera"),
        ("ATCamera: {camera: 'http://h/camera/0'}", {}, "camera"),
        ("ATMCS: {mount: alpaca://h/telescope/x}", {}, "ATMCS --device mount: device number 'x'"),
        ("ATMCS: {mount: alpaca://h/telescope/0}", {"speed": 600.0}, "a real device runs in real time: --speed 1"),
        ("ATSpectrograph: {filter: alpaca://h/filterwheel/0, disperser: alpaca://h/filterwheel/1}",
         {"inject": ["filter-stuck", "dome-drift"]}, "fault injection .* is for simulated devices"),
        ("ATCamera: {camera: alpaca://h/camera/0}\\nATCamera: {camera: alpaca://h/camera/1}", {},
         r"line 2, column 1: .*the key 'ATCamera' is given twice \(first on line 1\)"),
        ("ATCamera: [unclosed", {}, "not valid YAML"),
    ],
)  # fmt: skip
def test_a_bad_devices_file_is_refused_naming_the_file_and_rule(
    tmp_path: Path, text: str, options: dict[str, Any], match: str
) -> None:
    path = tmp_path / "devices.yaml"
    path.write_text(text.replace("\\n", "\n"))
    with pytest.raises(ValidationError, match=f"devices file {path}"):
        read_devices(path, **{"speed": 1.0, **options})
    with pytest.raises(ValidationError, match=match):
        read_devices(path, **{"speed": 1.0, **options})


def test_an_unreadable_devices_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="cannot be read"):
        read_devices(tmp_path / "nowhere.yaml", speed=1.0)


def test_a_component_takes_its_devices_from_the_site_file_as_its_unit_runs_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from obsq.csc.app.components import site_devices
    from obsq.csc.app.listing import list_components
    from obsq.csc.core.errors import UsageError

    site = tmp_path / "devices.yaml"
    site.write_text("ATDome: {dome: 'alpaca://10.0.0.5:11111/dome/0'}\n")
    assert site_devices("ATDome", [], site, speed=1.0, inject=[]) == {"dome": "alpaca://10.0.0.5:11111/dome/0"}
    assert site_devices("ScriptQueue:2", [], site, speed=1.0, inject=[]) == {}  # not named: its simulator
    given = site_devices("ATDome", ["dome=indi://h/Dome Simulator"], site, speed=1.0, inject=[])
    assert given == {"dome": "indi://h/Dome Simulator"}  # --device wins
    with pytest.raises(UsageError, match=r"devices file .*devices\.yaml: .*a real device runs in real time"):
        site_devices("ATDome", [], site, speed=600.0, inject=[])
    list_components(site)
    lines = capsys.readouterr().out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("ATDome"))
    assert "real devices" in lines[at]
    assert lines[at + 1].split() == ["dome:", "alpaca://10.0.0.5:11111/dome/0"]
    assert "simulated" in next(line for line in lines if line.startswith("ATMCS"))
