"""set_summary_state.py: put components into the summary states listed (SetSummaryState v1)."""

from __future__ import annotations

from typing import Any

from obsq.csc.core.errors import ExpectedError
from obsq.csc.core.states import State, command_path
from obsq.csc.interfaces import interface_names
from obsq.scripts.base import BaseScript

COMMAND_TIMEOUT_S = 60.0
#: Rubin's components this observatory does not have: named and skipped, as Rubin's blocks list them (ESS:201…).
NOT_HERE = ("ESS", "ATPtg", "ATAOS", "ATPneumatics", "ATHexapod", "ATDomeTrajectory", "ATHeaderService", "ATOODS",
            "ATBuilding", "GIS", "Watcher", "Scheduler", "WeatherForecast", "DIMM", "DSM", "EAS", "HVAC")  # fmt: skip


class SetSummaryState(BaseScript):
    description = "Put each listed component into the listed summary state, by the shortest command path."

    @classmethod
    def get_schema(cls) -> dict[str, Any]:
        return {
            "title": "SetSummaryState v1",
            "type": "object",
            "additionalProperties": False,
            "required": ["data"],
            "properties": {
                "data": {
                    "type": "array",
                    "minItems": 1,
                    "description": "[[component[:index], state, override?], ...]",
                    "items": {"type": "array", "minItems": 2, "maxItems": 3, "items": {"type": "string"}},
                },
                "mute_alarms": {
                    "type": "boolean",
                    "default": True,
                    "description": "mute the components' alarms while they change state (Rubin's)",
                },
                "mute_duration": {
                    "type": "number",
                    "default": 30.0,
                    "description": "min the alarms stay muted (Rubin's)",
                },
            },
        }

    async def configure(self, config: dict[str, Any]) -> None:
        self.entries: list[tuple[str, State, str]] = []
        self.skipped: list[str] = []
        for entry in config["data"]:
            name, state_name, override = entry[0], entry[1].upper(), entry[2] if len(entry) > 2 else ""
            if state_name not in State.__members__ or state_name == "FAULT":
                raise ExpectedError(
                    f"data: {entry[1]!r} is not a state to command (STANDBY, DISABLED, ENABLED, OFFLINE)"
                )
            component = name.partition(":")[0]
            if component not in interface_names():
                if component not in NOT_HERE:
                    raise ExpectedError(
                        f"data: {name!r} is no component of this observatory ({', '.join(interface_names())})"
                    )
                self.skipped.append(name)
                continue
            self.entries.append((name, State[state_name], override))
        self.remotes = {name: self.remote(name) for name, _, _ in self.entries}
        if self.skipped:
            self.log.warning(
                "components_skipped", skipped=",".join(self.skipped), reason="not part of this observatory"
            )

    def set_metadata(self, metadata: dict[str, Any]) -> None:
        metadata["duration"] = 2.0 * len(self.entries)

    async def run_script(self) -> None:
        await self.start_remotes()
        if self.skipped:
            await self.checkpoint(f"Skipping {', '.join(self.skipped)}: not part of this observatory")
        for name, target, override in self.entries:
            await self.checkpoint(f"set {name}")
            remote = self.remotes[name]
            try:
                current = State((await remote.event("summaryState").aget(timeout_s=15))["summaryState"])
            except TimeoutError:
                raise ExpectedError(f"{name} is not running (no summaryState within 15 s)") from None
            for command in command_path(current, target):
                data = {"configurationOverride": override} if command == "start" else {}
                await remote.command(command, data, timeout_s=COMMAND_TIMEOUT_S)
            self.log.info("summary_state_set", component=name, state=target.name)
