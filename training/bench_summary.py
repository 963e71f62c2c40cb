"""Benchmark rows over seeds: per fabric, the mean and the worst of every figure, and earlier result
files read back so that a bench run in parts (other fabrics, other seeds, another day) is summarised
as one. Shared by ``qc bench aitex`` (training.benchmark) and ``qc bench onboarding``
(bench/bench_onboarding.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

COLUMNS = ("image_auroc", "tile_auroc", "pixel_auroc", "aupro", "false_reject_rate", "recall")
"""The figures a bench row carries."""
WORST_COLUMNS = (("image_auroc", "img AUROC"), ("tile_auroc", "tile AUROC"), ("pixel_auroc", "px AUROC"),
                 ("false_reject_rate", "FRR"), ("recall", "recall"))
"""The figures a mean [worst] summary shows, with their titles."""


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per fabric: the mean, min and max of every figure over its runs (seeds)."""
    out = []
    for fabric in dict.fromkeys(r["fabric"] for r in rows):
        runs = [r for r in rows if r["fabric"] == fabric]
        summary: dict[str, Any] = {"fabric": fabric, "runs": len(runs)}
        for key in (*COLUMNS, "onboarding_s", "steps"):
            values = [r[key] for r in runs if r.get(key) is not None]
            summary[key] = (
                {"mean": sum(values) / len(values), "min": min(values), "max": max(values)} if values else None
            )
        out.append(summary)
    return out


def format_mean_worst(rows: list[dict[str, Any]]) -> str:
    """Each fabric's mean [worst] over its seeds (worst: the lowest AUROC or recall, the highest
    false-reject rate), then the mean over the fabrics of their means and of their worst."""

    def worst_of(figure: dict, key: str) -> float:
        return figure["max"] if key == "false_reject_rate" else figure["min"]

    def cell(mean: float | None, worst: float | None) -> str:
        return f"{'n/a':>15}" if mean is None else f"{mean:.3f} [{worst:.3f}]".rjust(15)

    summary = summarise(rows)
    lines = [f"{'fabric':>12} {'seeds':>5} " + " ".join(f"{title:>15}" for _, title in WORST_COLUMNS)
             + "   (mean [worst] over seeds)"]
    for s in summary:
        cells = [cell(None, None) if s[key] is None else cell(s[key]["mean"], worst_of(s[key], key))
                 for key, _ in WORST_COLUMNS]
        lines.append(f"{s['fabric']:>12} {s['runs']:>5} " + " ".join(cells))
    cells = []
    for key, _ in WORST_COLUMNS:
        figures = [s[key] for s in summary if s[key] is not None]
        cells.append(cell(None, None) if not figures else cell(
            sum(f["mean"] for f in figures) / len(figures), sum(worst_of(f, key) for f in figures) / len(figures)
        ))
    lines.append(f"{'mean':>12} {sum(s['runs'] for s in summary):>5} " + " ".join(cells))
    return "\n".join(lines)


class ResultFilesRefused(ValueError):
    """Earlier result files that cannot be summarised together; the message names the file and why."""


def rows_of(
    paths: list[Path], *, bench: str, settings: tuple[str, ...], defaults: dict[str, Any] | None = None
) -> list[dict]:
    """The rows of earlier ``qc bench <bench>`` result files, in order. The files must agree on every
    key of ``settings`` (a file without one counts as its ``defaults`` value: it ran before the
    setting existed): a summary over two configurations would mean neither. A file that cannot be
    read, one of another configuration than the first, or a fabric and seed given twice is refused
    by name (ResultFilesRefused)."""
    defaults = defaults or {}
    rows: list[dict] = []
    first: tuple[Path, dict] | None = None
    for path in paths:
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ResultFilesRefused(f"--summarise: cannot read {path}: {error}") from None
        if not isinstance(result, dict) or not isinstance(result.get("rows"), list):
            raise ResultFilesRefused(f"--summarise: {path} is not a qc bench {bench} result (no rows)")
        if first is None:
            first = (path, result)
        for key in settings:
            ours, theirs = (r.get(key, defaults.get(key)) for r in (result, first[1]))
            if ours != theirs:
                raise ResultFilesRefused(
                    f"--summarise: {path} has {key} {ours!r} where {first[0]} has {theirs!r}; "
                    "summarise one configuration at a time"
                )
        seen = {(row["fabric"], row["seed"]) for row in rows}
        for row in result["rows"]:
            if (row["fabric"], row["seed"]) in seen:
                raise ResultFilesRefused(f"--summarise: {row['fabric']} seed {row['seed']} is in {path} and an earlier file")
            rows.append(row)
    return rows
