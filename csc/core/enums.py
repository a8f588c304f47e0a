"""Rubin's enumerations of field values, as ts_xml's enums define them, for components and scripts alike."""

from __future__ import annotations

import enum


class AzimuthCommandedState(enum.IntEnum):
    """Rubin's ATDome.AzimuthCommandedState."""

    UNKNOWN = 1
    GOTOPOSITION = 2
    HOME = 3
    STOP = 4


class AzimuthState(enum.IntEnum):
    """Rubin's ATDome.AzimuthState."""

    NOTINMOTION = 1
    MOVINGCW = 2
    MOVINGCCW = 3


class DoorCommandedState(enum.IntEnum):
    """Rubin's ATDome.ShutterDoorCommandedState."""

    UNKNOWN = 1
    CLOSED = 2
    OPENED = 3
    STOP = 4


class DoorState(enum.IntEnum):
    """Rubin's ATDome.ShutterDoorState."""

    CLOSED = 1
    OPENED = 2
    PARTIALLYOPENED = 3
    OPENING = 4
    CLOSING = 5


class ScriptState(enum.IntEnum):
    """SAL's ScriptState."""

    UNKNOWN = 0
    UNCONFIGURED = 1
    CONFIGURED = 2
    RUNNING = 3
    PAUSED = 4
    ENDING = 5
    STOPPING = 6
    FAILING = 7
    DONE = 8
    STOPPED = 9
    FAILED = 10
    CONFIGURE_FAILED = 11

    @property
    def is_final(self) -> bool:
        return self in (ScriptState.DONE, ScriptState.STOPPED, ScriptState.FAILED, ScriptState.CONFIGURE_FAILED)
