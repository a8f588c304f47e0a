"""Command acknowledgement codes, numbered as SAL's `SalRetCode`."""

from __future__ import annotations

import enum


class AckCode(enum.IntEnum):
    """The `ack` field of an `ackcmd` message."""

    #: SAL's CMD_ACK, "received" (salobj's remotes count it good): obsq never sends it; from others it ends nothing.
    ACK = 300
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
        """True for every code that ends a command (all but ACK and INPROGRESS)."""
        return self not in (AckCode.ACK, AckCode.INPROGRESS)

    @property
    def is_good(self) -> bool:
        return self in (AckCode.ACK, AckCode.INPROGRESS, AckCode.COMPLETE)
