"""What a figure was measured on: benches and training records name the processor, because the
same 2-core budget trains twice as many steps on one x86_64 host as on another."""

from __future__ import annotations

import os
import platform
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


def cpu_model(cpuinfo: Path = CPUINFO) -> str:
    """The processor's model name ("AMD EPYC 7B13"), or platform.processor(), or "cpu"."""
    try:
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def machine() -> str:
    """One line for a bench's output and JSON: "x86_64 2 cores (AMD EPYC), Linux"."""
    return f"{platform.machine()} {os.cpu_count()} cores ({cpu_model()}), {platform.system()}"
