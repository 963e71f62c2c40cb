"""The ``api:`` section: where the REST API listens, who may read it, and the upload limits."""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field

from qc.strict import Strict


def is_loopback(host: str) -> bool:
    """Whether ``host`` only takes connections from this machine (127.0.0.0/8, ::1, localhost).
    Any other name or address, 0.0.0.0 and :: included, may be reached from the network."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything, so not loopback
        return False


class ApiConfig(Strict):
    host: str = Field("127.0.0.1", description="interface the REST API listens on")
    port: int = Field(8000, ge=0, le=65535, description="TCP port of the REST API")
    require_keys: bool | Literal["auto"] = Field(
        "auto", description="read routes (units, images, CSV, PDF, summary, lots, model, /metrics) "
        "need a viewer key too; mutating routes always need one. auto: yes unless `host` is a "
        "loopback address; false: reads are open to anyone who can reach the port",
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="origins allowed to call the API from a browser; empty: CORS off"
    )
    max_upload_mb: float = Field(20.0, gt=0, le=1024, description="largest image POST /inspect takes")
    max_upload_megapixels: float = Field(
        24.0, gt=0, le=1000,
        description="largest image POST /inspect decodes, in millions of pixels (read from the header "
        "first: a small file can inflate to gigabytes); an inspection holds about 18 bytes a pixel",
    )
    max_concurrent_inspections: int = Field(
        1, ge=1, le=64,
        description="uploads POST /inspect works on at once; beyond, 503 with Retry-After (each "
        "takes CPU from the line and memory in proportion to its pixels)",
    )

    def reads_need_key(self) -> bool:
        if self.require_keys == "auto":  # off the loopback, the safe choice is keys
            return not is_loopback(self.host)
        return self.require_keys
