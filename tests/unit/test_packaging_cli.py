"""Packaging and CLI surface: every mapped folder is packaged, every subcommand has --help."""

from __future__ import annotations

import argparse
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from obsq.csc.cli import build_parser, main
from obsq.csc.interfaces import interface_names, load_interface

REPO = Path(__file__).resolve().parents[2]


def test_every_package_folder_is_listed_in_pyproject() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    mapping = config["package-dir"]
    found = set()
    for package, folder in mapping.items():
        for init in (REPO / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(REPO / folder)
            found.add(".".join([package, *relative.parts]))
    assert found == listed


def test_every_interface_loads_and_validates() -> None:
    assert "Test" in interface_names()
    for name in interface_names():
        assert load_interface(name).name == name


def _walk(parser: argparse.ArgumentParser, words: list[str]) -> list[tuple[list[str], argparse.ArgumentParser]]:
    found = [(words, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found += _walk(child, [*words, name])
    return found


PARSERS = _walk(build_parser(), [])


@pytest.mark.parametrize("words", [w for w, _ in PARSERS], ids=lambda w: " ".join(w) or "obsq")
def test_every_subcommand_has_help(words: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args([*words, "--help"])
    assert info.value.code == 0
    assert "usage: obsq" in capsys.readouterr().out


def test_every_option_and_argument_says_what_it_is() -> None:
    missing = [
        f"{' '.join(words) or 'obsq'} {action.dest}"
        for words, parser in PARSERS
        for action in parser._actions
        if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) and not action.help
    ]
    assert missing == []


def test_connection_options_are_taken_before_and_after_the_action() -> None:
    before = build_parser().parse_args(["queue", "--broker", "mqtt://h:1", "--root", "r", "show"])
    after = build_parser().parse_args(["queue", "show", "--broker", "mqtt://h:1", "--root", "r"])
    neither = build_parser().parse_args(["queue", "show"])
    assert (before.broker, before.root) == (after.broker, after.root) == ("mqtt://h:1", "r")
    assert (neither.broker, neither.root) == (None, "obsq")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["cmd", "Test", "start"], "Test is indexed: write Test:INDEX"),
        (["cmd", "Test:1", "wait", "duration"], "write fields as key=value"),
        (["cmd", "Test:1", "setScalars", "colour=red"], "has no field 'colour'"),
        (["cmd", "Test:1", "setScalars", "boolean0=maybe"], "'maybe' is not a valid boolean"),
        (["status", "--broker", "http://x"], "scheme must be mqtt:// or mqtts://"),
        (["csc", "run", "Nope:1"], "unknown component 'Nope'"),
        (["status", "--root", "a/+/b"], "topic root 'a/+/b' must be /-separated words"),
        (["status", "--broker", "mqtt://127.0.0.1:1"], "cannot reach the MQTT broker at mqtt://127.0.0.1:1"),
        (["queue", "show", "--broker", "mqtt://127.0.0.1:1"], "cannot reach the MQTT broker at mqtt://127.0.0.1:1"),
        (["up", "--only", "ATDome,Nope"], "--only: unknown component 'Nope'"),
        (["up", "--state", "ATDome=flying"], "'flying' is not standby, disabled or enabled"),
        (["weekly", "--inject", "dome-wobble"], "unknown injection 'dome-wobble'"),
    ],
)
def test_bad_cli_input_is_named(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main([*argv, "--connect-timeout", "0.2"] if argv[0] in ("status", "queue") else argv)
    assert code in (1, 2)
    assert message in capsys.readouterr().err


def test_every_module_is_in_the_layers_contract() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    layers = next(c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers")["layers"]
    named = {name.strip() for layer in layers for name in layer.split("|")}
    mapping = config["tool"]["setuptools"]["package-dir"]
    modules = set()
    for package, folder in mapping.items():
        if package == "obsq.csc":
            for path in (REPO / folder).iterdir():
                if path.name != "__init__.py" and (path.suffix == ".py" or (path / "__init__.py").is_file()):
                    modules.add(f"obsq.csc.{path.stem}")
        else:
            modules.add(package)
    assert modules - named == set()
    assert named - modules == set()


def test_the_command_line_loads_no_transport_framework_or_numeric_stack() -> None:
    heavy = ["asyncio", "aiomqtt", "amqtt", "numpy", "astropy", "scipy", "matplotlib", "jsonschema", "structlog"]
    probe = (
        "import sys, contextlib, io\n"
        "from obsq.csc.cli import build_parser, main\n"
        "build_parser()\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['csc', 'list'])\n"
        f"print([m for m in {heavy!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("name", ["ATDome", "ATWhiteLight", "ATSpectrograph", "ATMCS", "OCPS", "ScriptQueue", "Test"])
def test_a_component_process_loads_no_numeric_stack(name: str, tmp_path: Path) -> None:
    probe = (
        "import sys, pathlib\n"
        "from obsq.csc.app import components\n"
        "from obsq.csc.compose import build_component\n"
        "from obsq.csc.bus.memory import MemoryBroker\n"
        "from obsq.csc.clock import ManualClock\n"
        f"build_component({name!r}, index=0, simulate=True, inject=[], data_dir=pathlib.Path({str(tmp_path)!r}),\n"
        "                bus=MemoryBroker().client(), clock=ManualClock())\n"
        "print([m for m in ('numpy', 'astropy', 'scipy', 'matplotlib') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_script_process_loads_no_numeric_stack() -> None:
    probe = (
        "import sys\n"
        "import obsq.scripts.process\n"
        "from obsq.scripts.library import ScriptRoots, load_script_class\n"
        "roots = ScriptRoots.default()\n"
        "load_script_class(roots.resolve('auxtel/take_image_latiss.py', True))\n"
        "load_script_class(roots.resolve('auxtel/make_latiss_calibrations.py', False))\n"
        "print([m for m in ('numpy', 'astropy', 'scipy', 'matplotlib') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
