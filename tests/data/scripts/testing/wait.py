"""testing/wait.py: waits, and can fail (in configure, run or cleanup) or hang — for the queue's tests."""

from __future__ import annotations

from typing import Any

from obsq.csc.core.errors import ExpectedError
from obsq.scripts.base import BaseScript


class WaitScript(BaseScript):
    description = "Wait wait_time s (clock), with checkpoints; fail in run or cleanup on request."

    @classmethod
    def get_schema(cls) -> dict[str, Any]:
        return {
            "title": "WaitScript v1",
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "wait_time": {"type": "number", "minimum": 0, "default": 0},
                "fail_run": {"type": "boolean", "default": False},
                "fail_cleanup": {"type": "boolean", "default": False},
                "fail_configure": {"type": "boolean", "default": False},
            },
        }

    async def configure(self, config: dict[str, Any]) -> None:
        if config["fail_configure"]:
            raise ExpectedError("configure failed on purpose (fail_configure)")

    def set_metadata(self, metadata: dict[str, Any]) -> None:
        metadata["duration"] = self.config["wait_time"]

    async def run_script(self) -> None:
        await self.checkpoint("start")
        await self.clock.sleep(self.config["wait_time"])
        if self.config["fail_run"]:
            raise ExpectedError("failed on purpose (fail_run)")
        await self.checkpoint("end")

    async def cleanup(self) -> None:
        if self.config["fail_cleanup"]:
            raise ExpectedError("cleanup failed on purpose")
