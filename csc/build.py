"""What this build of obsq can run: light constants that the command line lists without loading anything."""

from __future__ import annotations

#: The components with hardware; this build has simulated drivers only (`--simulate`).
HARDWARE = ("ATWhiteLight", "ATSpectrograph", "ATDome", "ATMCS", "ATCamera")
#: The observatory's services besides the hardware: the reduction service, the script queue, the scheduler.
SERVICES = ("OCPS", "ScriptQueue", "Scheduler")
#: Every component service this build has, hardware first (compose.py builds each); Test is for tests.
RUNNABLE = (*HARDWARE, *SERVICES, "Test")
#: Components that are not services of their own: every script is one of these.
SCRIPTS = ("Script",)
