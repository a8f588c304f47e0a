"""Enabling a group of components, as Rubin's enable_* scripts take their configuration (for enable_atcs/latiss).

Rubin's configuration has one key per configurable component of the group (`atdome: x.yaml`,
lowercase, a configuration override or null) and `ignore`, a list of the group's components to
leave alone. Where the group has components this observatory does not (ATPtg, ATAOS…), the
script says which it skips, in its log and in its first checkpoint's name, and enables the rest.
"""

from __future__ import annotations

from typing import Any, ClassVar

from obsq.csc.core.errors import ExpectedError
from obsq.csc.core.states import State, command_path
from obsq.scripts.base import BaseScript


class EnableGroup(BaseScript):
    """Subclasses name the group (Rubin's lowercase names), which of them take a configuration, and obsq's own."""

    #: the group's components as Rubin's script names them
    group: ClassVar[tuple[str, ...]] = ()
    #: those with a configuration key
    configurable: ClassVar[tuple[str, ...]] = ()
    #: obsq's component for each of the group's names it has
    present: ClassVar[dict[str, str]] = {}

    @classmethod
    def get_schema(cls) -> dict[str, Any]:
        keys: dict[str, Any] = {
            name: {"description": f"configuration override for {cls.present.get(name, name)} (Rubin's key)",
                   "anyOf": [{"type": "string"}, {"type": "null"}], "default": None}
            for name in cls.configurable
        }  # fmt: skip
        return {
            "title": f"{cls.__name__} v1",
            "type": "object",
            "additionalProperties": False,
            "properties": {
                **keys,
                "ignore": {
                    "description": f"components of the group to leave alone, of {', '.join(cls.group)}",
                    "type": "array", "items": {"type": "string"}, "default": [],
                },
            },
        }  # fmt: skip

    async def configure(self, config: dict[str, Any]) -> None:
        unknown = [name for name in config["ignore"] if name not in self.group]
        if unknown:
            raise ExpectedError(f"ignore: {', '.join(unknown)} not in the group ({', '.join(self.group)})")
        wanted = [name for name in self.group if name not in config["ignore"]]
        self.skipped = [name for name in wanted if name not in self.present]
        self.remotes = {self.present[name]: self.remote(self.present[name]) for name in wanted if name in self.present}
        self.overrides = {
            self.present[name]: config.get(name) or "" for name in self.configurable if name in self.present
        }
        if self.skipped:
            self.log.warning("components_skipped", skipped=",".join(self.skipped),
                             reason="not part of this observatory")  # fmt: skip

    async def run_script(self) -> None:
        await self.start_remotes()
        if self.skipped:
            await self.checkpoint(f"Skipping {', '.join(self.skipped)}: not part of this observatory")
        for name, remote in self.remotes.items():
            await self.checkpoint(f"Enabling {name}")
            current = State((await remote.event("summaryState").aget(timeout_s=15))["summaryState"])
            for command in command_path(current, State.ENABLED):
                data = {"configurationOverride": self.overrides.get(name, "")} if command == "start" else {}
                await remote.command(command, data, timeout_s=60)
