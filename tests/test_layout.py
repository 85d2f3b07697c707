"""The package's shape: no import circles (imports inside functions count: a circle is a circle however late it
closes), and where work runs is read in one place (`datakit.executor.executor_for`), never by a stage."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

PACKAGE = Path(__file__).resolve().parents[1] / "datakit"


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Modules of datakit `name` imports anywhere in its file, but under `if TYPE_CHECKING:`."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for stmt in node.body
        for inner in ast.walk(stmt)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    return {m for m in found if m in known and m != name}


def test_no_import_circles() -> None:
    modules = _modules()
    graph = nx.DiGraph()
    for name, path in modules.items():
        graph.add_node(name)
        graph.add_edges_from((name, other) for other in _imports(name, path, set(modules)))
    circles = [sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1]
    assert len(graph) > 100 and graph.number_of_edges() > 300  # the walk saw the package
    assert circles == []


def test_a_planted_circle_is_found(tmp_path: Path) -> None:
    """The checker itself: a function-level import back to the importer is a circle."""
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("from datakit.b import x\n")
    b.write_text("def f():\n    from datakit.a import y\n")
    known = {"datakit.a", "datakit.b"}
    assert _imports("datakit.a", a, known) == {"datakit.b"}
    assert _imports("datakit.b", b, known) == {"datakit.a"}


def test_only_the_executor_reads_the_engine_kind() -> None:
    readers = {
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        for line in path.read_text().splitlines()
        if "engine" in line and ".kind" in line and "==" in line
    }
    assert readers == {"executor/__init__.py"}
