"""YAML read the one way obsq reads it: errors name the thing, the line and the rule; depth is bounded.

Configurations (components', scripts'), block overrides and configuration schemas come from
people and from other software. A YAML error names `what` (a file, a script's configuration)
with line and column, not PyYAML's `<unicode string>`; a document nested past `max_depth`
levels or with more than `max_nodes` values (aliases expanded) is refused by rule instead of
surfacing as a bare RecursionError further on. A key given twice in one mapping is refused
with both lines (PyYAML keeps the last one silently, and a site file would lose the first).
"""

from __future__ import annotations

from typing import Any

import yaml

from obsq.csc.core.errors import ValidationError

MAX_DEPTH = 32
MAX_NODES = 100_000


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: PyYAML's own error follows
                continue
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark,
                    f"the key {str(key)[:80]!r} is given twice (first on line {first.start_mark.line + 1})",
                    key_node.start_mark,
                )  # fmt: skip
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str, what: str, *, max_depth: int = MAX_DEPTH, max_nodes: int = MAX_NODES) -> Any:
    """Parse `text`; ValidationError naming `what`, the place and the rule if it is not acceptable YAML."""
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        raise ValidationError(f"{what} is not valid YAML: {where}{problem}") from None
    except yaml.YAMLError as exc:
        raise ValidationError(f"{what} is not valid YAML: {exc}") from None
    except RecursionError:
        raise ValidationError(f"{what} nests deeper than {max_depth} levels (rule: maxDepth)") from None
    check_depth(data, what, max_depth=max_depth, max_nodes=max_nodes)
    return data


def check_depth(data: Any, what: str, *, max_depth: int = MAX_DEPTH, max_nodes: int = MAX_NODES) -> None:
    """ValidationError if `data` nests deeper than `max_depth` or holds more than `max_nodes` values."""
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    nodes = 0
    while stack:
        value, path, depth = stack.pop()
        nodes += 1
        if nodes > max_nodes:
            raise ValidationError(f"{what} holds more than {max_nodes} values (rule: maxNodes)")
        if not isinstance(value, dict | list):
            continue
        if depth >= max_depth:
            shown = path if len(path) <= 80 else f"{path[:80]}…"
            raise ValidationError(f"{what}: field {shown!r} nests deeper than {max_depth} levels (rule: maxDepth)")
        items = value.items() if isinstance(value, dict) else enumerate(value)
        stack.extend((item, f"{path}/{key}".lstrip("/"), depth + 1) for key, item in items)
