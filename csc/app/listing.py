"""`obsq csc list`: every component with an interface, and what this build can run of it."""

from __future__ import annotations

from obsq.csc.build import HARDWARE, RUNNABLE, SCRIPTS, SERVICES
from obsq.csc.interfaces import interface_names, interface_summary


def list_components() -> int:
    for name in interface_names():
        summary = interface_summary(name)
        if name in HARDWARE:
            runnable = "simulated"
        elif name in SERVICES:
            runnable = "runnable"
        elif name in SCRIPTS:
            runnable = "every script"
        elif name in RUNNABLE:
            runnable = "runnable (test)"
        else:
            runnable = "interface only"
        indexed = "indexed" if summary.indexed else ""
        print(f"{name:<14} {indexed:<8} {runnable:<15} {summary.description}")
    return 0
