"""Structured logs for components: rendered on stderr and published as logMessage events.

Each component gets its own structlog logger (no global configuration), whose chain is:
level filter (the component's current level) -> level name -> the bus sink (a copy of the
event goes out as logMessage) -> console rendering. Publishing and rendering stay apart.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, MutableMapping
from typing import Any

import structlog

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
    "exception": logging.ERROR,
}

EventDict = MutableMapping[str, Any]
Sink = Callable[[int, dict[str, Any]], None]


def make_component_logger(
    name: str,
    *,
    level: Callable[[], int],
    sink: Sink,
    stream: Any = None,
) -> structlog.typing.FilteringBoundLogger:
    """A logger for component `name`; records at or above `level()` reach `sink` and `stream`."""

    def filter_level(_: Any, method: str, event: EventDict) -> EventDict:
        if LEVELS.get(method, logging.INFO) < level():
            raise structlog.DropEvent
        return event

    def publish(_: Any, method: str, event: EventDict) -> EventDict:
        sink(LEVELS.get(method, logging.INFO), dict(event))
        return event

    return structlog.wrap_logger(  # type: ignore[no-any-return]
        structlog.PrintLogger(stream or sys.stderr),
        processors=[
            filter_level,
            structlog.processors.add_log_level,
            structlog.processors.format_exc_info,
            publish,
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        context_class=dict,
        component=name,
    )


def format_message(event: EventDict) -> str:
    """One line for a logMessage: the event name and its fields as key=value."""
    fields = " ".join(f"{k}={v}" for k, v in event.items() if k not in ("event", "level", "component", "exception"))
    return f"{event.get('event', '')} {fields}".strip()
