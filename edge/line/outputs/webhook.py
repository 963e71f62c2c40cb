"""Webhook output: POST each unit's JSON to a URL (all units, or only fails).

Connection errors, timeouts and 5xx answers are retried with doubling waits; a 4xx answer means
the receiver will not take this unit as it is, so it is logged and counted, not retried. With a
secret, the header ``X-QC-Signature: sha256=<hex>`` carries the HMAC-SHA256 of the exact body,
so the receiver can check the message came from a station that knows the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import threading
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from edge.line.outputs.base import Output, TransientError, Unreachable
from edge.line.outputs.config import OutputsConfig, WebhookConfig
from edge.line.outputs.registry import StationInfo, register_output


class Rejected(Exception):
    """The receiver answered 4xx: retrying the same body would get the same answer."""


def signature(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def redacted(url: str) -> str:
    """The URL without user:password@, for logs and /healthz."""
    parts = urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


class WebhookOutput(Output):
    def __init__(self, config: WebhookConfig):
        self.config = config
        self.name = config.name
        self.target = f"webhook {redacted(config.url)}"
        self.retry = config.retry
        self.queue_size = config.queue.size
        self._secret = config.secret.get_secret_value().encode() if config.secret else None

    def wants(self, unit: dict[str, Any]) -> bool:
        return self.config.when == "all" or unit.get("verdict") == "fail"

    def send(self, unit: dict[str, Any], body: bytes, stop: threading.Event) -> None:
        headers = {**self.config.headers, "Content-Type": "application/json"}
        if self._secret is not None:
            headers[self.config.signature_header] = signature(self._secret, body)
        request = urllib.request.Request(self.config.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.config.timeout_s) as answer:
                answer.read()
        except urllib.error.HTTPError as exc:
            if exc.code >= 500:
                raise TransientError(f"{self.target} answered {exc.code} {exc.reason}") from None
            raise Rejected(f"{self.target} answered {exc.code} {exc.reason}") from None
        except urllib.error.URLError as exc:
            raise Unreachable(f"{self.target} unreachable: {exc.reason}") from None
        except (TimeoutError, ConnectionError, http.client.HTTPException, OSError) as exc:
            raise Unreachable(f"{self.target}: {type(exc).__name__}: {exc}") from None


@register_output("webhook")
def build_webhooks(config: OutputsConfig, _station: StationInfo) -> list[Output]:
    return [WebhookOutput(w) for w in config.webhooks]
