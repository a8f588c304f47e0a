"""Fault injection by name: `--inject NAME[=VALUE]` on `obsq up`, `obsq weekly` and `obsq csc run`.

The names, the component each concerns and what it does; `compose.py` maps each name onto a
named hook of that component's simulated driver. Pure data, so the command line can list and
check them without loading any component.
"""

from __future__ import annotations

from dataclasses import dataclass


class InjectionError(ValueError):
    """An unknown injection name, or one given to the wrong component."""


@dataclass(frozen=True)
class Injection:
    """A named fault: the component whose simulator it targets, and what it does."""

    component: str
    help: str


INJECTIONS: dict[str, Injection] = {
    "lamp-no-strike": Injection("ATWhiteLight", "the next N strikes (default 3) give no light"),
    "chiller-alarm": Injection("ATWhiteLight", "a chiller alarm S clock seconds (default 60) after the chiller starts"),
    "coolant-flow": Injection("ATWhiteLight", "the coolant flows at FRACTION (default 0.4) of its rate: a warning"),
    "lamp-stuck-on": Injection("ATWhiteLight", "the lamp keeps its light when turned off"),
    "dome-drift": Injection("ATDome", "the encoder slips DEG degrees (default 3) in the next move"),
    "filter-stuck": Injection("ATSpectrograph", "the filter wheel's next change never arrives"),
    "readout-failure": Injection("ATCamera", "the next N readouts (default 1) fail"),
}


def parse_injections(texts: list[str]) -> list[tuple[str, str]]:
    """`NAME[=VALUE]` strings as (name, value), checked against INJECTIONS."""
    parsed = []
    for text in texts:
        name, _, value = text.partition("=")
        if name not in INJECTIONS:
            raise InjectionError(f"unknown injection {name!r}; known: {', '.join(INJECTIONS)}")
        parsed.append((name, value))
    return parsed


def injections_for(component: str, texts: list[str]) -> list[str]:
    """The `--inject` arguments that concern `component`."""
    return [
        t
        for t, (name, _) in zip(texts, parse_injections(texts), strict=True)
        if INJECTIONS[name].component == component
    ]
