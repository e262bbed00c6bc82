"""Failed authentications per peer address, and the peers to answer "too many" without checking.

A peer with AUTH_FAILURE_LIMIT failed authentications (an unknown token, no valid credentials)
within AUTH_FAILURE_WINDOW seconds is refused — HTTP 429 on the console, RESOURCE_EXHAUSTED on
gRPC — for every request that carries credentials, without looking at them, until the oldest of
those failures is a window old. Refused requests are not checked, so they do not count as
failures and cannot keep the block going; a peer that keeps failing gets at most
AUTH_FAILURE_LIMIT checks per window. Everyone behind one address (loopback, a NAT) shares the
count: a guesser there locks out the others for up to a window.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

# 30 a minute: an agent with a wrong token retries at most every 5 s (12 a minute), so even two
# of them behind one address do not lock out the others there; a guesser gets 30 tries a minute.
AUTH_FAILURE_LIMIT = 30
AUTH_FAILURE_WINDOW = 60.0
TOO_MANY_FAILURES = "too many failed authentications from this address"
# Bounded memory whatever the number of addresses: past this, addresses without a failure in the
# window are forgotten, then the oldest half.
_MAX_TRACKED = 10_000


class AuthFailures:
    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}   # address -> its newest failure times

    def failed(self, ip: str) -> None:
        """Count a failed authentication from `ip`."""
        now = self._clock()
        self._failures.setdefault(ip, deque(maxlen=AUTH_FAILURE_LIMIT)).append(now)
        if len(self._failures) > _MAX_TRACKED:
            self._failures = {k: v for k, v in self._failures.items() if now - v[-1] < AUTH_FAILURE_WINDOW}
            for key in sorted(self._failures, key=lambda k: self._failures[k][-1])[:len(self._failures) // 2]:
                del self._failures[key]

    def retry_after(self, ip: str) -> float:
        """Seconds until `ip` may be checked again; 0 when it may be now."""
        times = self._failures.get(ip)
        if times is None or len(times) < AUTH_FAILURE_LIMIT:
            return 0.0
        wait = times[0] + AUTH_FAILURE_WINDOW - self._clock()
        return max(wait, 0.0)
