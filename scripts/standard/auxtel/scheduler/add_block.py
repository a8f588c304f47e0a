"""auxtel/scheduler/add_block.py: load a block into the auxiliary telescope's Scheduler (Rubin's AddBlock).

The Scheduler (Scheduler:2) validates the block and queues its scripts on this queue, after
this script; as Rubin's, the script refuses to run on another queue than ScriptQueue:2.
"""

from __future__ import annotations

from typing import Any

import yaml

from obsq.csc.core.errors import ExpectedError
from obsq.scripts.base import BaseScript

SCHEDULER_INDEX = 2
#: How long the Scheduler may take to accept the block (it validates, then the queue starts its scripts).
ADD_TIMEOUT_S = 180.0


class AddBlock(BaseScript):
    description = "Load a block into the AUX_TEL Scheduler (Scheduler:2), which queues its scripts here."

    @classmethod
    def get_schema(cls) -> dict[str, Any]:
        return {
            "title": "BaseAddBlock v1",
            "type": "object",
            "additionalProperties": False,
            "required": ["id"],
            "properties": {
                "id": {"type": "string", "minLength": 1, "description": "id of the block to load, e.g. BLOCK-309"},
                "override": {
                    "type": "object",
                    "additionalProperties": True,
                    "description": "the block's configuration overrides",
                },
            },
        }

    async def configure(self, config: dict[str, Any]) -> None:
        self.scheduler = self.remote(f"Scheduler:{SCHEDULER_INDEX}")

    def set_metadata(self, metadata: dict[str, Any]) -> None:
        metadata["duration"] = 30.0

    async def run_script(self) -> None:
        if self.id.index // 100_000 != SCHEDULER_INDEX:
            raise ExpectedError(
                f"Script with index {self.id.index} cannot run in this queue: it loads blocks into "
                f"Scheduler:{SCHEDULER_INDEX}, whose queue is ScriptQueue:{SCHEDULER_INDEX}"
            )
        await self.start_remotes()
        await self.assert_enabled(self.scheduler)
        block = self.config["id"]
        await self.checkpoint(f"Loading {block} into scheduler")
        override = self.config.get("override")
        data = {"id": block, "override": yaml.safe_dump(override) if override else ""}
        await self.scheduler.command("addBlock", data, timeout_s=ADD_TIMEOUT_S)
        await self.checkpoint("BLOCK successfully loaded")
