"""`obsq script`: the script library (list, schema) and one script run by hand with a YAML configuration."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from obsq.csc.app.connection import Connection, connected_bus
from obsq.csc.bus.brokers import private_broker
from obsq.csc.bus.credentials import child_environment
from obsq.csc.clock import LoopClock
from obsq.csc.component import AckError, Remote
from obsq.csc.core.codec import Envelope
from obsq.csc.core.errors import ObsqError, UsageError, ValidationError
from obsq.csc.core.states import State
from obsq.csc.core.yamltext import load_yaml
from obsq.csc.observatory import OBSERVATORY, Observatory
from obsq.csc.scriptqueue.runner import ProcessRunner, ScriptHandle
from obsq.scripts.base import BaseScript
from obsq.scripts.library import ScriptRoots, load_script_class
from obsq.scripts.states import ScriptState

#: Scripts run by hand take indices from here (the queue's are INDEX * 100,000 and up).
STANDALONE_INDEX = 900_000


def script_class(path: str, *, external: bool) -> type[BaseScript]:
    try:
        return load_script_class(ScriptRoots.default().resolve(path, not external))
    except ObsqError as exc:
        raise UsageError(str(exc)) from None


def list_scripts() -> int:
    roots = ScriptRoots.default()
    for standard in (True, False):
        for path in roots.available(standard):
            cls = load_script_class(roots.resolve(path, standard))
            print(f"{'standard' if standard else 'external':<9} {path:<48} {cls.description}")
    return 0


class _PlainDumper(yaml.SafeDumper):
    """YAML without anchors and aliases: a schema part used twice is written out twice, as a reader expects."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _kind(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        shown = ", ".join(str(v) for v in schema["enum"][:8])
        return f"one of {shown}{', …' if len(schema['enum']) > 8 else ''}"
    if "anyOf" in schema:
        return " or ".join(dict.fromkeys(_kind(s) for s in schema["anyOf"]))
    kind = str(schema.get("type", "any"))
    return f"{kind} of {_kind(schema['items'])}" if kind == "array" and isinstance(schema.get("items"), dict) else kind


def _fields(schema: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, dict[str, Any], bool]]:
    """(dotted name, schema, required) of each field, an object's own fields after it."""
    required = set(schema.get("required", []))
    for name, field in schema.get("properties", {}).items():
        yield f"{prefix}{name}", field, name in required
        if isinstance(field, dict) and field.get("type") == "object" and field.get("properties"):
            yield from _fields(field, f"{prefix}{name}.")


def schema_text(path: str, cls: type[BaseScript]) -> str:
    """The script's description, a line per field (type, default, description), then its JSON Schema as YAML."""
    schema = cls.get_schema()
    lines = [f"# {path}: {cls.description}"]
    if not schema:
        return "\n".join([*lines, "# no configuration"]) + "\n"
    fields = list(_fields(schema))
    width = max((len(name) for name, _, _ in fields), default=0) + 2
    lines.append("# fields (* required; units in brackets):")
    for name, field, needed in fields:
        default = f", default {json.dumps(field['default'])}" if "default" in field else ""
        mark = "*" if needed else " "
        units = f" [{field['units']}]" if field.get("units") else ""
        about = f" — {field['description']}" if field.get("description") else ""
        lines.append(f"#   {name:<{width}}{mark} {_kind(field)}{units}{default}{about}")
    return "\n".join(lines) + "\n" + yaml.dump(schema, Dumper=_PlainDumper, sort_keys=False, allow_unicode=True)


def print_schema(path: str, *, external: bool) -> int:
    print(schema_text(path, script_class(path, external=external)), end="")
    return 0


async def read_config(path: Path) -> str:
    """The text of a `--config` file; UsageError naming the file (and the line) if it cannot be read as YAML."""
    try:
        text = await asyncio.to_thread(path.read_text)
    except OSError as exc:
        raise UsageError(f"--config {path}: cannot be read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"--config {path}: is not UTF-8 text") from None
    try:
        load_yaml(text, f"--config {path}")
    except ValidationError as exc:
        raise UsageError(str(exc)) from None
    return text


#: Real seconds to wait, once the script's process has ended, for its last messages to arrive.
LATE_MESSAGES_S = 0.5


@dataclass(frozen=True)
class ScriptRunOptions:
    """`obsq script run PATH`: the script, its configuration, and where it runs."""

    connection: Connection
    path: str
    external: bool
    config: Path | None
    simulate: bool
    speed: float
    data: Path


async def _wait_own_state(remote: Remote, handle: ScriptHandle) -> bool:
    """Until the script process has published its first state; False if it died first."""
    wall = LoopClock()
    while (envelope := remote.event("state").get_envelope()) is None or envelope.origin != handle.origin:
        if handle.returncode is not None:
            return False
        await wall.sleep(0.01)
    return True


async def run_script(options: ScriptRunOptions) -> int:
    """One script, in its own process, against what is on the bus (or a simulated observatory)."""
    cls = script_class(options.path, external=options.external)
    config = await read_config(options.config) if options.config else ""
    try:
        cls.validate_configuration(config)
    except ObsqError as exc:
        raise UsageError(f"--config {options.config}: {exc}" if options.config else str(exc)) from None
    index = STANDALONE_INDEX + os.getpid() % 99_999
    root = options.connection.checked_root()
    wall = LoopClock()
    async with contextlib.AsyncExitStack() as stack:
        if options.simulate:
            url = await stack.enter_async_context(private_broker())
            root = f"script-{os.getpid()}"
        else:
            url = options.connection.url()
        bus = await stack.enter_async_context(connected_bus(options.connection, url, clock=wall))
        if options.simulate:
            members = [(cid, State.ENABLED if cid.name != "ATWhiteLight" else State.STANDBY)
                       for cid, _ in OBSERVATORY if cid.name != "ScriptQueue"]  # fmt: skip
            observatory = Observatory(url, root, options.data, options.speed, members)
            await stack.enter_async_context(observatory.running(bus, wall))
        logs = options.data / "logs" / "scripts"  # the script's own log lines: the terminal shows its states
        runner = ProcessRunner(
            broker=str(url),
            root=root,
            speed=options.speed,
            ca_file=url.ca_file,
            env=child_environment(url),
            log_dir=logs,
        )
        handle = await runner.start(index, options.path, not options.external)
        remote = await stack.enter_async_context(Remote(bus, f"Script:{index}", clock=wall, root=root))
        images = await stack.enter_async_context(ImagesOf(bus, root, wall, group_id=f"script-run-{index}"))
        echo = ScriptEcho(index, handle.origin)
        remote.event("state").callback = echo.on_state
        remote.event("logMessage").callback = echo.on_log
        if not await _wait_own_state(remote, handle):
            return 1
        try:
            await remote.command("configure", {"config": config}, timeout_s=60)
            await remote.command("setGroupId", {"groupId": images.group_id}, timeout_s=10)
            await remote.command("run", timeout_s=10)
            await echo.done.wait()
        except AckError as exc:
            print(f"obsq script: {exc}", flush=True)
        await handle.wait()
        await wall.sleep(LATE_MESSAGES_S)  # its last log lines and the camera's last file may still be on their way
        print(await images.summary(), flush=True)
        print(f"log: {logs / f'{index}.log'}", flush=True)
    return 0 if echo.final in (ScriptState.DONE, ScriptState.STOPPED) else 1


class ScriptEcho:
    """A script's states as the terminal shows them: each once, the reason of a final one, its warnings."""

    def __init__(self, index: int, origin: int) -> None:
        self.index, self.origin = index, origin
        self.final: ScriptState | None = None
        self.done = asyncio.Event()
        self._last: tuple[ScriptState, str] | None = None

    def on_state(self, envelope: Envelope) -> None:
        if envelope.origin != self.origin:
            return
        state = ScriptState(envelope.data["state"])
        checkpoint = envelope.data.get("lastCheckpoint", "")
        if self._last == (state, checkpoint):
            return  # the same state published again (a new group id, metadata): said once
        self._last = (state, checkpoint)
        print(f"Script:{self.index} {state.name} {checkpoint}".rstrip(), flush=True)
        if state.is_final and self.final is None:
            self.final = state
            reason = envelope.data.get("reason", "")
            if reason:
                print(f"  reason: {reason}", flush=True)
            self.done.set()

    def on_log(self, envelope: Envelope) -> None:
        if envelope.origin == self.origin and int(envelope.data.get("level", 0)) >= logging.WARNING:
            print(f"  warning: {envelope.data.get('message', '')}", flush=True)


class ImagesOf:
    """The images of a group id's exposures, from the camera's startIntegration and largeFileObjectAvailable."""

    def __init__(self, bus: Any, root: str, clock: LoopClock, *, group_id: str) -> None:
        self.group_id = group_id
        self.clock = clock
        self.camera = Remote(bus, "ATCamera", clock=clock, root=root)
        self.names: list[str] = []
        self.files: dict[str, str] = {}

    async def __aenter__(self) -> ImagesOf:
        await self.camera.start()
        self.camera.event("startIntegration").callback = self._on_start
        self.camera.event("largeFileObjectAvailable").callback = self._on_file
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.camera.close()

    def _on_start(self, envelope: Envelope) -> None:
        if envelope.data.get("groupId") == self.group_id:
            self.names.append(str(envelope.data["imageName"]))

    def _on_file(self, envelope: Envelope) -> None:
        self.files[str(envelope.data["id"])] = str(envelope.data["url"]).removeprefix("file://")

    async def summary(self) -> str:
        """Where the images went: how many, the folder, the first and last (a moment allowed for the last file)."""
        for _ in range(500):  # 5 s at most: a busy machine delivers late
            if all(name in self.files for name in self.names):
                break
            await self.clock.sleep(0.01)
        paths = [self.files[name] for name in self.names if name in self.files]
        if not self.names:
            return "images: none taken"
        if not paths:
            return f"images: {len(self.names)} taken, no file announced by ATCamera"
        folders = sorted({str(Path(p).parent) for p in paths})
        where = folders[0] if len(folders) == 1 else f"{len(folders)} folders under {Path(folders[0]).parent}"
        span = Path(paths[0]).name if len(paths) == 1 else f"{Path(paths[0]).name} … {Path(paths[-1]).name}"
        lost = f" ({len(self.names) - len(paths)} without a file)" if len(paths) < len(self.names) else ""
        return f"images: {len(paths)} in {where}: {span}{lost}"
