"""testing/leave_thread.py: ends DONE but leaves a thread running that nothing will end — for the queue's tests.

The interpreter waits for such a thread at exit, so without a bounded exit path its process
would outlive its script for ever.
"""

from __future__ import annotations

import threading

from obsq.scripts.base import BaseScript


class LeaveThread(BaseScript):
    description = "End DONE, leaving behind a (non-daemon) thread that never ends."

    async def run_script(self) -> None:
        await self.checkpoint("start")
        threading.Thread(target=threading.Event().wait, name="left-behind").start()
