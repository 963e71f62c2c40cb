"""The product's import graph: no circles anywhere, and the station's rooms layered one way
(docs/architecture.md): api -> services -> line / reports -> storage -> units -> qc.

Every import counts, those inside functions and under TYPE_CHECKING too: a lazy import is still a
dependency, only a later one.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("qc", "edge", "training")

# The station's rooms, highest first; a module may import its own room and the rooms below it.
# Configuration is read everywhere, so the config modules form a room of their own beneath the rest.
LAYERS = {
    "entry": ("edge.main", "edge.cli"),
    "api": ("edge.api",),
    "services": ("edge.services",),
    "line": ("edge.line",),
    "reports": ("edge.reports",),
    "storage": ("edge.storage",),
    "units": ("edge.units", "edge.text_fields"),
    "config": ("edge.config", "edge.line.outputs.config", "edge.line.triggers.config",
               "edge.line.sources.config", "edge.line.mqtt_config", "edge.line.severity_config",
               "edge.storage.config", "edge.api.config", "edge.reports.config"),
    "qc": ("qc",),
}
MAY_IMPORT = {
    "entry": {"entry", "api", "services", "line", "reports", "storage", "units", "config", "qc"},
    "api": {"api", "services", "line", "reports", "storage", "units", "config", "qc"},
    "services": {"services", "line", "reports", "storage", "units", "config", "qc"},
    "line": {"line", "storage", "units", "config", "qc"},  # never reports: they are siblings
    "reports": {"reports", "storage", "units", "config", "qc"},
    "storage": {"storage", "units", "config", "qc"},
    "units": {"units", "config", "qc"},
    "config": {"config", "qc"},
    "qc": {"qc"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for package in PACKAGES for p in sorted((REPO / package).rglob("*.py"))}


def _resolve(name: str) -> str | None:
    """The product module ``name`` refers to (a name inside a module resolves to the module)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str) -> set[str]:
    path = MODULES[module]
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(filter(None, (_resolve(a.name) for a in node.names)))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                target = f"{base}.{alias.name}"
                found.add(target if target in MODULES else _resolve(base))
    found.discard(None)
    found.discard(module)
    return found


GRAPH = {m: imports_of(m) for m in MODULES}


def circles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    return found


def layer_of(module: str) -> str | None:
    best = None
    for layer, prefixes in LAYERS.items():
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > len(best[1]):
                    best = (layer, prefix)
    return best[0] if best else None


def test_no_import_circles_in_product_code():
    assert circles() == []


def test_the_walker_finds_a_circle_and_a_lazy_import():
    GRAPH["qc.tiling"].add("qc.metrics")
    GRAPH["qc.metrics"].add("qc.tiling")
    try:
        assert ["qc.metrics", "qc.tiling"] in circles()
    finally:
        GRAPH["qc.tiling"] = imports_of("qc.tiling")
        GRAPH["qc.metrics"] = imports_of("qc.metrics")
    assert "edge.reports.feedback" in imports_of("edge.cli")  # imported inside a handler


def test_every_station_module_has_a_room():
    assert [m for m in MODULES if m.startswith("edge.") and layer_of(m) is None] == []


def test_the_station_rooms_import_only_downward():
    wrong = [
        f"{m} ({layer_of(m)}) imports {dep} ({layer_of(dep)})"
        for m in sorted(MODULES) if m.startswith("edge.")
        for dep in sorted(GRAPH[m]) if dep.startswith(("edge.", "qc."))
        if layer_of(dep) not in MAY_IMPORT[layer_of(m)]
    ]
    assert wrong == []


def engine_uses(module: str) -> list[str]:
    """Where ``module`` reads an attribute named ``engine`` (a store's database engine)."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    return [f"{module}:{node.lineno}" for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and node.attr == "engine"]


def test_the_api_never_touches_the_database_engine():
    """Routes ask reports or storage, which run the queries: route -> reports -> storage."""
    assert engine_uses("edge.storage.store")  # the check sees an engine where there is one
    assert [use for m in sorted(MODULES) if m.startswith("edge.api") for use in engine_uses(m)] == []
