"""Packaging and CLI surface: every mapped folder is packaged, every subcommand has --help."""

from __future__ import annotations

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


SUBCOMMANDS = [
    [],
    ["broker"],
    ["csc"],
    ["csc", "run"],
    ["csc", "list"],
    ["status"],
    ["cmd"],
    ["watch"],
    ["bench"],
    ["bench", "bus"],
    ["demo"],
]


@pytest.mark.parametrize("words", SUBCOMMANDS, ids=lambda w: " ".join(w) or "obsq")
def test_every_subcommand_has_help(words: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args([*words, "--help"])
    assert info.value.code == 0
    assert "usage: obsq" in capsys.readouterr().out


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
    ],
)
def test_bad_cli_input_is_named(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main([*argv, "--connect-timeout", "0.2"] if argv[0] in ("status",) else argv)
    assert code in (1, 2)
    assert message in capsys.readouterr().err
