"""Command acknowledgement codes, numbered as SAL's `SalRetCode`."""

from __future__ import annotations

import enum


class AckCode(enum.IntEnum):
    """The `ack` field of an `ackcmd` message."""

    INPROGRESS = 301
    STALLED = 302
    COMPLETE = 303
    NOPERM = -300
    NOACK = -301
    FAILED = -302
    ABORTED = -303
    TIMEOUT = -304

    @property
    def is_final(self) -> bool:
        """True for every code that ends a command (all but INPROGRESS)."""
        return self is not AckCode.INPROGRESS

    @property
    def is_good(self) -> bool:
        return self in (AckCode.INPROGRESS, AckCode.COMPLETE)
