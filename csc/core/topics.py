"""Topic grammar and MQTT filter matching — our own pure code.

Grammar: `{root}/{Component}/{index}/{kind}/{name}`, kind one of cmd, evt, tel, with the one
exception `{root}/{Component}/{index}/ackcmd` (one ack topic per component, as SAL's).
`root` may itself contain `/` (`site/test-42`); it never contains wildcards.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from obsq.csc.core.errors import TopicError

_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_ROOT_RE = re.compile(r"^[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*$")

DEFAULT_ROOT = "obsq"


class TopicKind(enum.Enum):
    """What a topic carries; the value is the topic segment."""

    COMMAND = "cmd"
    ACK = "ackcmd"
    EVENT = "evt"
    TELEMETRY = "tel"


def check_root(root: str) -> str:
    """Return `root` if it is a valid topic root, else raise TopicError."""
    if not _ROOT_RE.match(root):
        raise TopicError(f"topic root {root!r} must be /-separated words of [A-Za-z0-9_.-]")
    return root


def check_name(what: str, name: str) -> str:
    """Return `name` if it is a valid component or topic name, else raise TopicError."""
    if not _NAME_RE.match(name):
        raise TopicError(f"{what} {name!r} must start with a letter and contain only [A-Za-z0-9_]")
    return name


@dataclass(frozen=True, slots=True)
class ComponentId:
    """A component's name and SAL index (0 = not indexed)."""

    name: str
    index: int = 0

    def __post_init__(self) -> None:
        check_name("component name", self.name)
        if self.index < 0:
            raise TopicError(f"component index must be >= 0, got {self.index}")

    @classmethod
    def parse(cls, text: str) -> ComponentId:
        """Parse `NAME` or `NAME:INDEX`, as on the command line."""
        name, _, index_text = text.partition(":")
        if not index_text:
            return cls(name)
        try:
            index = int(index_text)
        except ValueError:
            raise TopicError(f"component index in {text!r} must be an integer") from None
        return cls(name, index)

    def __str__(self) -> str:
        return f"{self.name}:{self.index}" if self.index else self.name


@dataclass(frozen=True, slots=True)
class Topic:
    """One concrete topic."""

    root: str
    component: ComponentId
    kind: TopicKind
    name: str = ""

    def __post_init__(self) -> None:
        if self.kind is TopicKind.ACK:
            if self.name:
                raise TopicError("the ackcmd topic has no name segment")
        else:
            check_name(f"{self.kind.value} name", self.name)

    def __str__(self) -> str:
        base = f"{self.root}/{self.component.name}/{self.component.index}/{self.kind.value}"
        return base if self.kind is TopicKind.ACK else f"{base}/{self.name}"

    @classmethod
    def parse(cls, text: str) -> Topic:
        """Parse a concrete topic string; raise TopicError if it breaks the grammar."""
        parts = text.split("/")
        if parts[-1] == TopicKind.ACK.value:
            head, kind_text, name = parts[:-1], parts[-1], ""
        else:
            head, kind_text, name = parts[:-2], parts[-2] if len(parts) >= 2 else "", parts[-1]
        if len(head) < 3:
            raise TopicError(f"topic {text!r} is too short for {{root}}/{{Component}}/{{index}}/…")
        try:
            kind = TopicKind(kind_text)
        except ValueError:
            raise TopicError(f"topic {text!r}: kind {kind_text!r} is not cmd, ackcmd, evt or tel") from None
        *root_parts, component_name, index_text = head
        if not index_text.isdigit():
            raise TopicError(f"topic {text!r}: index {index_text!r} is not a non-negative integer")
        root = check_root("/".join(root_parts))
        return cls(root, ComponentId(component_name, int(index_text)), kind, name)


def component_filter(root: str, component: ComponentId | None, kind: TopicKind | None = None) -> str:
    """A subscription filter for one component (or every component if None) and kind."""
    comp = f"{component.name}/{component.index}" if component else "+/+"
    if kind is None:
        return f"{root}/{comp}/#"
    if kind is TopicKind.ACK:
        return f"{root}/{comp}/{kind.value}"
    return f"{root}/{comp}/{kind.value}/+"


def check_filter(topic_filter: str) -> str:
    """Return `topic_filter` if it is a valid MQTT filter, else raise TopicError."""
    levels = topic_filter.split("/")
    for i, level in enumerate(levels):
        if level == "#":
            if i != len(levels) - 1:
                raise TopicError(f"filter {topic_filter!r}: '#' must be the last level")
        elif level != "+" and ("+" in level or "#" in level):
            raise TopicError(f"filter {topic_filter!r}: wildcards must fill a whole level")
    if not topic_filter:
        raise TopicError("empty topic filter")
    return topic_filter


def filter_matches(topic_filter: str, topic: str) -> bool:
    """MQTT 3.1.1 matching of a concrete topic against a filter (§4.7).

    >>> filter_matches("obsq/+/0/evt/#", "obsq/Test/0/evt/heartbeat")
    True
    >>> filter_matches("obsq/Test/0/evt/#", "obsq/Test/0/evt")
    True
    >>> filter_matches("obsq/+", "obsq/a/b")
    False
    """
    f_levels = topic_filter.split("/")
    t_levels = topic.split("/")
    for i, f in enumerate(f_levels):
        if f == "#":
            return True
        if i >= len(t_levels):
            return False
        if f != "+" and f != t_levels[i]:
            return False
    return len(f_levels) == len(t_levels)


H = TypeVar("H")


class TopicRouter(Generic[H]):
    """Routes a concrete topic to the handlers whose filters match it.

    Exact filters are a dict look-up; wildcard filters are scanned. A handler may be
    registered under several filters; it is returned once per topic all the same.
    """

    def __init__(self) -> None:
        self._exact: dict[str, list[H]] = {}
        self._wild: dict[str, list[H]] = {}

    def add(self, topic_filter: str, handler: H) -> None:
        table = self._wild if ("+" in topic_filter or "#" in topic_filter) else self._exact
        table.setdefault(check_filter(topic_filter), []).append(handler)

    def remove(self, topic_filter: str, handler: H) -> bool:
        """Remove one registration; return True if the filter has no handler left."""
        table = self._wild if ("+" in topic_filter or "#" in topic_filter) else self._exact
        handlers = table.get(topic_filter, [])
        if handler in handlers:
            handlers.remove(handler)
        if not handlers:
            table.pop(topic_filter, None)
            return True
        return False

    def filters(self) -> list[str]:
        return [*self._exact, *self._wild]

    def items(self) -> Iterator[tuple[str, H]]:
        """Every (filter, handler) registration."""
        for table in (self._exact, self._wild):
            for topic_filter, handlers in table.items():
                for handler in handlers:
                    yield topic_filter, handler

    def __contains__(self, topic_filter: str) -> bool:
        return topic_filter in self._exact or topic_filter in self._wild

    def match(self, topic: str) -> Iterator[H]:
        seen: set[int] = set()
        for handler in self._exact.get(topic, ()):
            seen.add(id(handler))
            yield handler
        for topic_filter, handlers in self._wild.items():
            if filter_matches(topic_filter, topic):
                for handler in handlers:
                    if id(handler) not in seen:
                        seen.add(id(handler))
                        yield handler
