"""The Alertmanager v2 API client: `POST {url}/api/v2/alerts` with a JSON list of alerts.

Each URL is delivered to on its own: one that fails keeps the alerts it has not accepted (the
newest state of each) and gets them again at the next attempt (every second, and after each
evaluation), beside what changed meanwhile; the others wait at most one request's timeout. What is waiting for one URL is bounded
(MAX_WAITING alerts, the oldest resolved ones dropped first: Alertmanager resolves an alert
it does not hear of again at its endsAt anyway).
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

log = logging.getLogger("fleetlog.collector.alerting")

MAX_WAITING = 10_000
TIMEOUT = 5.0
# An Alertmanager's answer is small ("" on success, an error text otherwise); read no more.
MAX_ANSWER_BYTES = 4096

Alert = dict[str, Any]


def url_label(url: str) -> str:
    """The URL without user and password: what logs, metrics and the status show."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def basic_auth(url: str) -> dict[str, str]:
    """The Authorization header for a URL that carries a user (and password), as an Alertmanager
    behind a proxy with basic auth wants it; the URL sent keeps neither."""
    parts = urlsplit(url)
    if parts.username is None:
        return {}
    pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}


def alert_key(alert: Alert) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(alert["labels"].items()))


class Receiver:
    """One Alertmanager URL and the alerts it has still to accept."""

    def __init__(self, url: str):
        self.url = url
        self.label = url_label(url)
        self.endpoint = self.label.rstrip("/") + "/api/v2/alerts"
        self.headers = {"Content-Type": "application/json", **basic_auth(url)}
        self.waiting: dict[tuple[tuple[str, str], ...], Alert] = {}
        self.last_error = ""
        self.last_error_at = 0.0
        self.failures = 0            # in a row
        self._lock = threading.Lock()   # the evaluator queues while the sender thread delivers

    def queue(self, alerts: Iterable[Alert]) -> None:
        with self._lock:
            for alert in alerts:
                self.waiting[alert_key(alert)] = alert
            if len(self.waiting) > MAX_WAITING:
                # Resolved ones first (they are the oldest news), then the oldest queued.
                resolved = [k for k, a in self.waiting.items() if a.get("_resolved")]
                for key in (resolved + list(self.waiting))[:len(self.waiting) - MAX_WAITING]:
                    self.waiting.pop(key, None)

    def pending(self) -> list[Alert]:
        with self._lock:
            return list(self.waiting.values())

    def deliver(self) -> int:
        """Send what is waiting; the number of alerts accepted. Raises OSError (with the reason)
        when the Alertmanager did not accept them; they stay waiting."""
        with self._lock:
            sending = dict(self.waiting)
        if not sending:
            return 0
        alerts = [{k: v for k, v in alert.items() if not k.startswith("_")} for alert in sending.values()]
        body = json.dumps(alerts).encode()
        request = urllib.request.Request(self.endpoint, data=body, method="POST",
                                         headers=self.headers)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:   # http/https only (rules.py)
                answer.read(MAX_ANSWER_BYTES)
        except urllib.error.HTTPError as exc:
            text = exc.read(MAX_ANSWER_BYTES).decode("utf-8", "replace").strip().replace("\n", " ")[:200]
            raise OSError(f"{self.label}: HTTP {exc.code} {text}".rstrip()) from None
        except urllib.error.URLError as exc:
            raise OSError(f"{self.label}: {exc.reason}") from None
        except (OSError, ValueError) as exc:
            raise OSError(f"{self.label}: {exc}") from None
        with self._lock:
            for key, alert in sending.items():
                if self.waiting.get(key) is alert:      # not replaced by a newer state meanwhile
                    del self.waiting[key]
        return len(sending)
