"""The private fields every message carries (SAL's seqNum, identity, origin, send time).

One sequence counter per process, from a random start, numbers every command this process
sends, so (identity, origin, seqNum) is distinct whichever Remote sent it.
"""

from __future__ import annotations

import getpass
import itertools
import os
import random
import socket
from typing import Any

from obsq.csc.clock import Clock
from obsq.csc.core.codec import Envelope, WireLimits, encode

command_seq = itertools.count(random.randint(1, 1 << 30))


def user_identity() -> str:
    """SAL's identity for a person: `user@host`."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


class Stamper:
    """Adds the private fields (seqNum, identity, origin, send time) to one sender's messages."""

    def __init__(self, clock: Clock, identity: str, limits: WireLimits, origin: int | None = None) -> None:
        self.identity = identity
        self.origin = os.getpid() if origin is None else origin
        self._liveness_clock = clock.unscaled()
        self._seq = itertools.count(1)
        self.limits = limits

    def envelope(self, data: dict[str, Any], seq_num: int | None = None) -> Envelope:
        seq = next(self._seq) if seq_num is None else seq_num
        return Envelope(seq, self.identity, self.origin, self._liveness_clock.tai(), data)

    def encode(self, data: dict[str, Any], seq_num: int | None = None) -> bytes:
        return encode(self.envelope(data, seq_num), self.limits)
