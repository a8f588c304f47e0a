"""`obsq csc list`: every component with an interface, and what this build can run of it."""

from __future__ import annotations

from pathlib import Path

from obsq.csc.build import HARDWARE, RUNNABLE, SCRIPTS, SERVICES
from obsq.csc.core.errors import UsageError, ValidationError
from obsq.csc.interfaces import interface_names, interface_summary


def list_components(devices_file: Path | None = None) -> int:
    """Every component; with the site's devices file, the devices each hardware component drives."""
    devices: dict[str, dict[str, str]] = {}
    if devices_file is not None:
        from obsq.csc.compose import read_devices

        try:
            devices = read_devices(devices_file, speed=1.0)
        except ValidationError as exc:
            raise UsageError(str(exc)) from None
    for name in interface_names():
        summary = interface_summary(name)
        if name in devices:
            runnable = "real devices"
        elif name in HARDWARE:
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
        for role, url in devices.get(name, {}).items():
            print(f"{'':<14} {role}: {url}")
    return 0
