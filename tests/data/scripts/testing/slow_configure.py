"""testing/slow_configure.py: takes real seconds to configure (a queue slow to accept a block, as on a busy machine)."""

from __future__ import annotations

from typing import Any

from obsq.scripts.base import BaseScript


class SlowConfigureScript(BaseScript):
    description = "Spend configure_s real seconds configuring (as a slow start on a busy machine), then run at once."

    @classmethod
    def get_schema(cls) -> dict[str, Any]:
        return {
            "title": "SlowConfigureScript v1",
            "type": "object",
            "additionalProperties": False,
            "properties": {"configure_s": {"type": "number", "minimum": 0, "default": 15}},
        }

    async def configure(self, config: dict[str, Any]) -> None:
        await self.clock.unscaled().sleep(config["configure_s"])  # real time, whatever the clock's speed

    def set_metadata(self, metadata: dict[str, Any]) -> None:
        metadata["duration"] = 1.0

    async def run_script(self) -> None:
        await self.checkpoint("configured slowly, done quickly")
