"""auxtel/enable_latiss.py: enable LATISS (ATCamera, ATSpectrograph)."""

from __future__ import annotations

from typing import Any

from obsq.csc.core.states import State, command_path
from obsq.scripts.base import BaseScript

COMPONENTS = ["ATCamera", "ATSpectrograph"]


class EnableLATISS(BaseScript):
    description = "Enable LATISS (ATCamera, ATSpectrograph), each with an optional configuration override."

    @classmethod
    def get_schema(cls) -> dict[str, Any]:
        return {
            "title": "EnableLATISS v1",
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "overrides": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {name: {"type": "string"} for name in COMPONENTS},
                    "default": {},
                }
            },
        }

    async def configure(self, config: dict[str, Any]) -> None:
        self.remotes = {name: self.remote(name) for name in COMPONENTS}

    async def run_script(self) -> None:
        await self.start_remotes()
        for name, remote in self.remotes.items():
            await self.checkpoint(f"Enabling {name}")
            current = State((await remote.event("summaryState").aget(timeout_s=15))["summaryState"])
            for command in command_path(current, State.ENABLED):
                data = {"configurationOverride": self.config["overrides"].get(name, "")} if command == "start" else {}
                await remote.command(command, data, timeout_s=60)
