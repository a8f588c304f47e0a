"""OCPS service: its summary state is real; `execute` refuses until pipelines exist in this build."""

from __future__ import annotations

from typing import Any

from obsq.csc.component import BaseCsc, Command
from obsq.csc.core.errors import ExpectedError


class OCPSCsc(BaseCsc):
    """The reduction service, without pipelines yet."""

    def __init__(self, *, index: int = 1, **kwargs: Any) -> None:
        super().__init__("OCPS", index=index, **kwargs)
        self.register_command("execute", self._do_execute)

    async def _do_execute(self, command: Command) -> None:
        raise ExpectedError(f"no reduction pipelines in this build: cannot run {command.data['pipeline']!r}")
