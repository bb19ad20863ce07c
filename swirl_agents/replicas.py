"""Several replicas of one served model: least-loaded routing, health, failover.

``OpenAIPolicy`` (and through it ``EndpointJudge``) sends each request to a replica
that ``ReplicaPool.acquire`` picks: the healthy replica with the fewest requests in
flight, one this request has not tried yet when there is one (so a retry goes
elsewhere). ``release`` reports how the attempt went. A replica is taken out

- at once when it refuses a connection (nothing listens on its port), and
- after ``max_failures`` failures in a row (5xx, timeouts, dropped connections).

An ejected replica gets no requests while another is healthy; after ``cooldown``
seconds one health probe (the policy's ``GET /models``) runs in the background, and
a replica that answers is back in the pool. When every replica is out, requests go
to the one ejected longest ago rather than nowhere, so a lone server is retried with
backoff exactly as before: the retry budget, not the breaker, decides when to give up.

The pool only does bookkeeping; the caller does the HTTP, so each request still
returns once to its caller whatever replicas it went through.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit


def parse_base_urls(urls: str | Sequence[str]) -> list[str]:
    """The API roots of ``openai:URL1,URL2,...`` (or of a list), checked and without ``/``.

    Raises:
        ValueError: No URL, one that is not http(s), or the same URL twice.
    """
    items = urls.split(",") if isinstance(urls, str) else list(urls)
    parsed = [item.strip().rstrip("/") for item in items]
    for url in parsed:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"not an http(s) base URL: {url!r} (in {urls!r}).")
    if not parsed:
        raise ValueError("need at least one base URL.")
    if len(set(parsed)) != len(parsed):
        raise ValueError(f"the same base URL is given twice in {urls!r}.")
    return parsed


@dataclass
class Replica:
    """One replica's state; read it through ``ReplicaPool.snapshot``.

    Attributes:
        url: Its API root.
        in_flight: Requests sent to it and not answered yet.
        requests: Attempts sent to it.
        failures: Attempts that failed (refused, 5xx, timeout, dropped).
        ejections: Times it was taken out.
        returns: Times a health probe brought it back.
        healthy: Whether it gets requests while another replica is healthy.
    """

    url: str
    in_flight: int = 0
    requests: int = 0
    failures: int = 0
    ejections: int = 0
    returns: int = 0
    healthy: bool = True
    _failures_in_row: int = field(default=0, repr=False)
    _ejected_at: float = field(default=0.0, repr=False)
    _probing: bool = field(default=False, repr=False)
    _last_pick: int = field(default=0, repr=False)


class ReplicaPool:
    """Routes requests among replicas and keeps track of which are healthy.

    Args:
        urls: The replicas' API roots.
        probe: ``probe(url) -> True`` when the replica at ``url`` answers (called in a
            background thread once a replica's cooldown is over).
        max_failures: Failures in a row that take a replica out.
        cooldown: Seconds an ejected replica waits before it is probed.
    """

    def __init__(
        self,
        urls: Sequence[str],
        probe: Callable[[str], bool],
        *,
        max_failures: int = 3,
        cooldown: float = 2.0,
    ):
        if not urls:
            raise ValueError("a replica pool needs at least one URL.")
        if max_failures < 1 or cooldown < 0:
            raise ValueError("need max_failures >= 1 and cooldown >= 0.")
        self.replicas = [Replica(url) for url in urls]
        self.max_failures = max_failures
        self.cooldown = cooldown
        self._probe = probe
        self._lock = threading.Lock()
        self._picks = 0
        self._in_flight = 0
        self._busy_since = 0.0
        self._busy = 0.0

    def acquire(self, tried: Sequence[Replica] = ()) -> Replica:
        """The replica for the next attempt; the caller must ``release`` it.

        Healthy replicas not in ``tried`` come first, then healthy ones, then (when all
        are out) the one ejected longest ago; among equals, the fewest in flight, then
        the one picked longest ago (so equal replicas take turns).
        """
        now = time.monotonic()
        with self._lock:
            for replica in self.replicas:
                if (
                    not replica.healthy
                    and not replica._probing
                    and now - replica._ejected_at >= self.cooldown
                ):
                    replica._probing = True
                    threading.Thread(
                        target=self._run_probe, args=(replica,), daemon=True, name="replica-probe"
                    ).start()
            healthy = [r for r in self.replicas if r.healthy]
            fresh = [r for r in healthy if all(r is not t for t in tried)]
            if fresh or healthy:
                replica = min(fresh or healthy, key=lambda r: (r.in_flight, r._last_pick))
            else:
                replica = min(self.replicas, key=lambda r: (r._ejected_at, r.in_flight))
            self._picks += 1
            replica._last_pick = self._picks
            replica.in_flight += 1
            replica.requests += 1
            if self._in_flight == 0:
                self._busy_since = time.perf_counter()
            self._in_flight += 1
            return replica

    def has_untried(self, tried: Sequence[Replica]) -> bool:
        """Whether a healthy replica is left that ``tried`` does not hold (a retry can go
        there at once instead of backing off)."""
        with self._lock:
            return any(r.healthy and all(r is not t for t in tried) for r in self.replicas)

    def release(self, replica: Replica, *, failed: bool = False, refused: bool = False) -> None:
        """Report an attempt: it answered, it ``failed`` (counts toward ejection) or the
        connection was ``refused`` (ejects at once)."""
        with self._lock:
            replica.in_flight -= 1
            self._in_flight -= 1
            if self._in_flight == 0:
                self._busy += time.perf_counter() - self._busy_since
            if not (failed or refused):
                # Only a probe brings a replica back: this answer may be to a request
                # sent before it went down.
                replica._failures_in_row = 0
                return
            replica.failures += 1
            replica._failures_in_row += 1
            if replica.healthy and (refused or replica._failures_in_row >= self.max_failures):
                replica.healthy = False
                replica.ejections += 1
            if not replica.healthy:
                replica._ejected_at = time.monotonic()  # a failure while out restarts the cooldown

    @property
    def busy_seconds(self) -> float:
        """Wall time with at least one request in flight: the time spent waiting on HTTP."""
        with self._lock:
            running = time.perf_counter() - self._busy_since if self._in_flight else 0.0
            return self._busy + running

    def snapshot(self) -> list[dict[str, object]]:
        """Each replica's counters (JSON-ready), for benchmarks and logs."""
        with self._lock:
            return [
                {
                    "url": r.url,
                    "healthy": r.healthy,
                    "in_flight": r.in_flight,
                    "requests": r.requests,
                    "failures": r.failures,
                    "ejections": r.ejections,
                    "returns": r.returns,
                }
                for r in self.replicas
            ]

    def _run_probe(self, replica: Replica) -> None:
        try:
            alive = self._probe(replica.url)
        except Exception:  # a probe that breaks is a replica that is not back
            alive = False
        with self._lock:
            replica._probing = False
            if alive:
                replica.healthy = True
                replica.returns += 1
                replica._failures_in_row = 0
            else:
                replica._ejected_at = time.monotonic()
