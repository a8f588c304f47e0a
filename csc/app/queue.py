"""`obsq queue`: operate ScriptQueue:INDEX — add a block or a script, show, watch, pause, stop, move, requeue."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from obsq.csc.app.connection import FIRST_ACK_S, Connection, broker_for, connected_bus, require_live
from obsq.csc.app.scripts import read_config
from obsq.csc.clock import LoopClock
from obsq.csc.component import AckError, Remote
from obsq.csc.core.errors import ObsqError, UsageError, ValidationError
from obsq.csc.core.topics import ComponentId
from obsq.csc.scriptqueue.blocks import Block, available_blocks, block_folders, block_target, expand_block, read_block
from obsq.csc.scriptqueue.model import FailureStrategy, Location
from obsq.scripts.library import ScriptRoots, check_configuration, load_script_class

#: How long an operator waits for the queue's answer (s); adding a block starts its processes.
QUEUE_TIMEOUT_S = 180.0


def parse_location(text: str) -> tuple[Location, int]:
    """`first`, `last`, `before:INDEX` or `after:INDEX`."""
    name, _, index = text.partition(":")
    location = Location.__members__.get(name.upper())
    relative = location in (Location.BEFORE, Location.AFTER)
    if location is None or relative != bool(index) or (index and not index.isdigit()):
        raise UsageError(f"--location {text!r}: use first, last, before:INDEX or after:INDEX")
    return location, int(index or 0)


def strategy_names() -> dict[str, FailureStrategy]:
    """The failure strategies by their command-line names (`on-script-failure`)."""
    return {s.name.lower().replace("_", "-"): s for s in FailureStrategy}


@dataclass(frozen=True)
class QueueOptions:
    """One `obsq queue` action on ScriptQueue:`queue`, with its arguments."""

    connection: Connection
    queue: int
    action: str
    block: str = ""
    overrides: Sequence[str] = ()
    #: the block's target (YAML/JSON mapping: ra, dec, name...), for its $ra, $dec... templates
    target: str = ""
    failure_strategy: FailureStrategy = FailureStrategy.NONE
    path: str = ""
    external: bool = False
    config: Path | None = None
    location: str = "last"
    indices: Sequence[int] = ()
    terminate: bool = False
    #: requeue: a script of a block and the rest of its block
    rest_of_block: bool = False


def parse_values(pairs: Iterable[tuple[str, str]], what: str) -> dict[str, Any]:
    """Fields given as text (`--override k=v`, a form's inputs) read as YAML values: `3` a number, `[a, b]` a list."""
    values: dict[str, Any] = {}
    for key, text in pairs:
        try:
            values[key] = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem", None) or "not YAML"
            raise ValidationError(f"{what} {key!r}: {text[:60]!r} cannot be read as a value ({mark})") from None
    return values


def _override_pairs(pairs: Sequence[str]) -> list[tuple[str, str]]:
    out = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise UsageError(f"--override {pair!r}: write key=value")
        out.append((key, value))
    return out


def check_script(path: str, standard: bool, config: str) -> None:
    """ValidationError naming the script, the field and the rule unless `config` fits the script at `path`."""
    check_configuration(load_script_class(ScriptRoots.default().resolve(path, standard)), path, config)


def validated_block(reference: str, override: dict[str, Any], target: str = "") -> Block:
    """The block, its configuration and every script's parameters checked as the queue checks them, before sending.

    `target` (YAML/JSON, blocks.TARGET_SCHEMA) is the target the block's `$ra`, `$dec`... come from, now.
    """
    data, label = read_block(reference, block_folders())
    given = block_target(target, "--target", LoopClock().tai())
    return expand_block(data, label, override, check_script, given)


def check_block(reference: str, overrides: Sequence[str], target: str = "") -> int:
    """`obsq queue add-block BLOCK --check`: the block validated exactly as the queue would, nothing sent.

    0 and the scripts it would queue when accepted; 1 and the refusal (the block, script, field
    and rule) when not. The block must be known here: a file, JSON, or a program in this host's folders.
    """
    try:
        block = validated_block(reference, parse_values(_override_pairs(overrides), "--override"), target)
    except ValidationError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 1
    print(f"accepted: block {block.program} ({block.name}), {len(block.scripts)} script"
          f"{'s' * (len(block.scripts) != 1)}, nothing sent")  # fmt: skip
    for script in block.scripts:
        print(f"  {script.path} ({'standard' if script.standard else 'external'})")
    return 0


def add_block_request(
    reference: str, override: dict[str, Any], strategy: FailureStrategy, *, known_here: bool = False, target: str = ""
) -> dict[str, Any]:
    """The addBlock fields for a block that passed `validated_block` (ValidationError naming what is wrong).

    A block id this host does not know may be one of the queue's site blocks: unless `known_here`
    is required, it is sent as it is and the queue checks it against its own folders.
    """
    text = reference.strip()
    if known_here or text.startswith("{") or text.endswith(".json") or text in available_blocks(block_folders()):
        validated_block(reference, override, target)
    return {"id": reference, "override": yaml.safe_dump(override) if override else "", "failureStrategy": int(strategy),
            "target": target}  # fmt: skip


def add_script_request(path: str, standard: bool, config: str, location: str) -> dict[str, Any]:
    """The add fields for one script whose configuration passed `check_script`."""
    where, index = parse_location(location)
    check_script(path, standard, config)
    return {"path": path, "isStandard": standard, "config": config, "location": int(where), "locationSalIndex": index}


async def _request(options: QueueOptions) -> tuple[str, dict[str, Any]]:
    """The queue command and its fields for an action other than show and watch."""
    action = options.action
    if action == "add-block":
        override = parse_values(_override_pairs(options.overrides), "--override")
        return "addBlock", add_block_request(options.block, override, options.failure_strategy, target=options.target)
    if action == "add":
        config = await read_config(options.config) if options.config else ""
        return "add", add_script_request(options.path, not options.external, config, options.location)
    if action in ("move", "requeue"):
        location, index = parse_location(options.location)
        data = {"scriptSalIndex": options.indices[0], "location": int(location), "locationSalIndex": index}
        return action, data | ({"restOfBlock": True} if options.rest_of_block else {})
    if action == "stop":
        return "stopScripts", {"salIndices": list(options.indices), "terminate": options.terminate}
    return action, {}  # pause, resume, show, watch


async def run_queue(options: QueueOptions) -> int:
    """Operators' view of ScriptQueue:INDEX."""
    root = options.connection.checked_root()
    async with (
        broker_for(options.connection, start_if_missing=False) as url,
        connected_bus(options.connection, url) as bus,
        Remote(bus, ComponentId("ScriptQueue", options.queue), clock=LoopClock(), root=root) as remote,
    ):
        try:
            command, data = await _request(options)  # a bad option or file is named before anything is sent
            await require_live(remote, url)
            if options.action in ("show", "watch"):
                return await show_queue(remote, watch=options.action == "watch")
            ack = await remote.command(command, data, timeout_s=QUEUE_TIMEOUT_S, first_ack_s=FIRST_ACK_S)
        except AckError as exc:
            print(f"{exc.ack.command}: {exc.ack.ack.name} {exc.ack.result}", flush=True)
            return 1
        except ObsqError as exc:
            raise UsageError(str(exc)) from None
        print(f"{command}: {ack.ack.name} {ack.result}", flush=True)
    return 0


def item_line(item: dict[str, Any]) -> str:
    """One queue item as `obsq queue show` prints it (the checkpoint in full)."""
    progress = f" {item['done']}/{item['total']} images" if item["total"] else ""
    extra = f" — {item['reason']}" if item["reason"] and item["state"] != "DONE" else ""
    return (f"{item['area']:<8} {item['index']} {item['block'] or '-':<9} {item['path']:<45} {item['state']:<12}"
            f" {item['checkpoint']}{progress}{extra}").rstrip()  # fmt: skip


def header_line(data: dict[str, Any]) -> str:
    state = "running" if data["running"] else "PAUSED"
    return (f"queue {state}; current {data['currentSalIndex'] or '-'}; {data['length']} queued, "
            f"{data['pastLength']} in history")  # fmt: skip


def queue_changes(before: dict[str, Any] | None, after: dict[str, Any]) -> list[str]:
    """What changed between two `queue` events, a line each (everything, the first time)."""
    new_items = {i["index"]: i for i in json.loads(after.get("items") or "[]")}
    if before is None:
        return [header_line(after), *(f"  {item_line(i)}" for i in new_items.values())]
    lines = []
    if header_line(before) != header_line(after):
        lines.append(header_line(after))
    old_items = {i["index"]: i for i in json.loads(before.get("items") or "[]")}
    for index, item in new_items.items():
        old = old_items.get(index)
        if old is None:
            lines.append(f"+ {item_line(item)}")
            continue
        changed = []
        if old["area"] != item["area"]:
            changed.append(f"{old['area']} → {item['area']}")
        if old["state"] != item["state"]:
            changed.append(f"{old['state']} → {item['state']}")
        if old["checkpoint"] != item["checkpoint"] and item["checkpoint"]:
            changed.append(f"checkpoint: {item['checkpoint']}")
        if (old["done"], old["total"]) != (item["done"], item["total"]) and item["total"]:
            changed.append(f"{item['done']}/{item['total']} images")
        if old["reason"] != item["reason"] and item["reason"]:
            changed.append(f"reason: {item['reason']}")
        if changed:
            lines.append(f"~ {index} {item['path']}: {'; '.join(changed)}")
    lines += [f"- {index} {old_items[index]['path']} (out of the recent history)"
              for index in old_items if index not in new_items]  # fmt: skip
    return lines


async def show_queue(remote: Remote, *, watch: bool) -> int:
    """Print the queue; with `watch`, then each change as it comes (`+` added, `~` changed, `-` dropped)."""
    reader = remote.event("queue")
    try:
        await remote.command("showQueue", timeout_s=30, first_ack_s=FIRST_ACK_S)
    except AckError as exc:  # not ENABLED (Rubin's showQueue needs it): the queue as it last published it
        if "not allowed in state" not in exc.ack.result:
            raise
        print(f"{remote.id}: {exc.ack.result.removeprefix('Failed: ')}; the queue as it last published it:", flush=True)
    last: dict[str, Any] | None = None
    while True:
        data = await reader.aget(timeout_s=10) if last is None else await reader.next(flush=False, timeout_s=3600)
        if last is not None and data.get("token") == last.get("token"):
            continue
        for line in queue_changes(last, data):
            print(line, flush=True)
        last = data
        if not watch:
            return 0
