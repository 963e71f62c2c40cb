"""How many uploads POST /api/v1/inspect works on at once (api.max_concurrent_inspections).

An inspection holds its decoded image, its heatmap and its pictures (about 18 bytes a pixel, so
hundreds of MB for a large upload) and the CPU cores the line inspects on. Past the limit a caller
is refused at once and told when to come back, rather than queued: waiting requests would hold
their uploads in memory, and the line must keep its pace.
"""

from __future__ import annotations

import math
import threading


class InspectionSlots:
    def __init__(self, limit: int):
        self.limit = limit
        self._free = threading.BoundedSemaphore(limit)
        self._last_took_s = 1.0

    def try_take(self) -> bool:
        """A slot if one is free now; never waits."""
        return self._free.acquire(blocking=False)

    def give_back(self, took_s: float) -> None:
        self._last_took_s = took_s
        self._free.release()

    def retry_after_s(self) -> int:
        """Whole seconds until a slot is likely free: as long as the last inspection took."""
        return max(1, math.ceil(self._last_took_s))
