"""The package's layers, read from its own imports: no cycles, and no low room importing a
high one (the rule is the issue's: pipeline, records and models stand below the capabilities;
shared measurements stand below everything that measures)."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "synthloop"
CAPABILITIES = ("audit", "curate", "generate", "poison", "compliance", "collapse", "selfplay",
                "detect", "monitor")


def _module(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or \
        (isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(path: Path, modules: set[str]) -> set[str]:
    """synthloop modules ``path`` imports anywhere (function bodies too), except under
    ``if TYPE_CHECKING:`` (annotations only, never executed)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
            and _is_type_checking(node) for n in ast.walk(node)}
    out = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            if name in modules:
                out.add(name)
    return out


def import_graph() -> dict[str, set[str]]:
    files = {_module(p): p for p in PKG.rglob("*.py")}
    modules = set(files)
    return {m: _imports(p, modules) - {m} for m, p in files.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_no_import_cycles():
    assert _cycles(import_graph()) == []


def test_the_graph_is_read():
    g = import_graph()
    assert "synthloop.measures.minhash" in g["synthloop.curate.filters"]
    assert "synthloop.records.io" in g["synthloop.pipeline.runner"]


def test_low_rooms_do_not_import_high_ones():
    g = import_graph()
    bad = []
    for m, deps in g.items():
        room = _room(m)
        for d in deps:
            high = _room(d)
            if room in ("pipeline", "records", "models") and high in CAPABILITIES:
                bad.append(f"{m} -> {d}")
            if room in ("measures", "records", "errors", "progress", "htmlpage", "sandbox") and \
                    high in (*CAPABILITIES, "pipeline", "catalog", "cli"):
                bad.append(f"{m} -> {d}")
            if high == "cli" and room != "cli":
                bad.append(f"{m} -> {d}")
    assert bad == []


def test_nothing_outside_the_audit_reaches_into_it():
    g = import_graph()
    bad = [f"{m} -> {d}" for m, deps in g.items() for d in deps
           if d.startswith("synthloop.audit.") and not m.startswith("synthloop.audit")]
    assert bad == []


def test_table_generation_and_the_cli_do_not_import_torch():
    """A table generator or the CLI's startup needs no model: torch (≈ 4 s to import) stays
    out (#20: `synthloop generate --table` spent most of its wall time importing)."""
    import subprocess
    import sys

    code = ("import sys, synthloop.cli, synthloop.generate.oneoff, synthloop.generate.copula, "
            "synthloop.catalog, synthloop.models\n"
            "from synthloop.models import GenParams\n"
            "heavy = [m for m in ('torch', 'transformers', 'sklearn', 'plotly') "
            "if m in sys.modules]\n"
            "assert not heavy, heavy")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
