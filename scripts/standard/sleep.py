"""sleep.py: wait a while (a pause in a block, or a trivial script for measurements)."""

from __future__ import annotations

from typing import Any

from obsq.scripts.base import BaseScript


class Sleep(BaseScript):
    description = "Sleep for sleep_for seconds of clock time."

    @classmethod
    def get_schema(cls) -> dict[str, Any]:
        return {
            "title": "Sleep v1",
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "sleep_for": {
                    "type": "number",
                    "minimum": 0,
                    "default": 0,
                    "description": "seconds of clock time to sleep",
                }
            },
        }

    def set_metadata(self, metadata: dict[str, Any]) -> None:
        metadata["duration"] = self.config["sleep_for"]

    async def run_script(self) -> None:
        await self.checkpoint("sleep")
        await self.clock.sleep(self.config["sleep_for"])
