"""The one-way dependency rule of design.md: training -> qc <- edge, and no torch on a station."""

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _imported_top_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _violations(package: str, forbidden: set[str]) -> list[str]:
    found = []
    for path in sorted((REPO / package).rglob("*.py")):
        bad = _imported_top_modules(path) & forbidden
        if bad:
            found.append(f"{path.relative_to(REPO)} imports {sorted(bad)}")
    return found


def test_qc_imports_neither_training_nor_edge_nor_torch():
    assert _violations("qc", {"training", "edge", "torch", "torchvision", "fastapi"}) == []


def test_edge_never_imports_training_or_torch():
    assert _violations("edge", {"training", "torch", "torchvision"}) == []


def test_training_never_imports_edge():
    assert _violations("training", {"edge"}) == []


def test_cli_help_and_predict_path_do_not_load_torch():
    code = (
        "import sys, contextlib, io\n"
        "import qc.cli, qc.predict, qc.inference\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        "        qc.cli.main(['--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
