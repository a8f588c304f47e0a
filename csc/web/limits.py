"""How often the page's server lets anyone try a password: failed logins per client address and per user.

Pure: the caller gives the time. A login that failed is counted for its client's address and for
the user name it tried; once either has FAILURES_ALLOWED failures within WINDOW_S, further
logins from that address or for that user are refused (429) until the oldest failure leaves the
window, which Retry-After says. Guessing many users from one address, or one user from many
addresses, both meet it. Successful logins are not counted. The number of keys kept is bounded,
so a flood of addresses cannot grow it without limit.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque

#: Failed logins allowed per address and per user within the window ...
FAILURES_ALLOWED = 10
#: ... of this many seconds.
WINDOW_S = 60.0
#: Addresses and users remembered at most (the least recently failed are forgotten first).
MAX_KEYS = 10_000


class LoginLimiter:
    """Failed logins per key ("address:…", "user:…") in a sliding window."""

    def __init__(self, allowed: int = FAILURES_ALLOWED, window_s: float = WINDOW_S, max_keys: int = MAX_KEYS) -> None:
        self.allowed = allowed
        self.window_s = window_s
        self.max_keys = max_keys
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, address: str, user: str, now: float) -> float:
        """Seconds until a login from `address` for `user` may be tried (0: now)."""
        wait = 0.0
        for key in (f"address:{address}", f"user:{user}"):
            times = self._recent(key, now)
            if len(times) >= self.allowed:
                wait = max(wait, times[0] + self.window_s - now)
        return wait

    def failed(self, address: str, user: str, now: float) -> None:
        for key in (f"address:{address}", f"user:{user}"):
            times = self._recent(key, now)
            times.append(now)
            self._failures[key] = times
            self._failures.move_to_end(key)
        while len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key, deque())
        while times and times[0] <= now - self.window_s:
            times.popleft()
        return times


def retry_after_header(seconds: float) -> str:
    """Retry-After in whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))
