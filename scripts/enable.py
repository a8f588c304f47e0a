"""Enabling a group of components, each with an optional configuration override (for enable_* scripts)."""

from __future__ import annotations

from typing import Any, ClassVar

from obsq.csc.core.states import State, command_path
from obsq.scripts.base import BaseScript


class EnableGroup(BaseScript):
    """Subclasses name the group in `components`."""

    components: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def get_schema(cls) -> dict[str, Any]:
        return {
            "title": f"{cls.__name__} v1",
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "overrides": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {name: {"type": "string"} for name in cls.components},
                    "default": {},
                }
            },
        }

    async def configure(self, config: dict[str, Any]) -> None:
        self.remotes = {name: self.remote(name) for name in self.components}

    async def run_script(self) -> None:
        await self.start_remotes()
        for name, remote in self.remotes.items():
            await self.checkpoint(f"Enabling {name}")
            current = State((await remote.event("summaryState").aget(timeout_s=15))["summaryState"])
            for command in command_path(current, State.ENABLED):
                data = {"configurationOverride": self.config["overrides"].get(name, "")} if command == "start" else {}
                await remote.command(command, data, timeout_s=60)
