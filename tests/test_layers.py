"""The layers' import directions (docs/architecture.md), read from every module's imports.

Data flows one way: models -> encoders / solver -> baselines -> metrics -> pipeline ->
front ends (clients, server, evaluation, proto's wire conversion).  Every import counts,
deferred ones inside functions too.  Scripts (bench/, training/) and tests may import
anything; a new top-level folder must be given its place here first.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = {"bench", "training", "tests", ".venv", ".git", "build", "dist"}
FOUNDATION = {"common", "ir", "events", "deadline"}
ALLOWED: dict[str, set[str]] = {
    "common": set(),
    "ir": set(),
    "events": set(),  # the progress events every producer and consumer shares
    "deadline": set(),  # when an answer is due, one type from the front end to the solve
    "rendering": {"common"},
    "models": {"common"},
    "encoders": FOUNDATION | {"models"},
    "solver": FOUNDATION,  # the IR without the encoders
    "baselines": FOUNDATION | {"models", "encoders"},
    "metrics": FOUNDATION | {"models", "encoders", "baselines"},
    "isolation": FOUNDATION | {"solver"},  # solves in child processes: the solver's registry and certificates
    "pipeline": FOUNDATION | {"models", "encoders", "solver", "isolation", "baselines", "metrics", "rendering"},
    "proto": {"common", "pipeline"},  # the wire format of pipeline requests and answers
    # front ends: the pipeline (and the wire format, pictures, the package's version); evaluation also
    # measures maps (metrics)
    "evaluation": {"__init__", "common", "pipeline", "rendering", "metrics", "baselines", "models", "farm"},
    "farm": {"__init__", "common", "pipeline"},  # batch jobs on Dask: requests in, explanations out
    # reading dumps back: independent of the code that wrote them (pysmt, python-sat, HiGHS, z3)
    "debugging": {"__init__", "common", "pipeline", "rendering"},
    "clients": {"__init__", "common", "events", "pipeline", "proto", "rendering", "evaluation", "farm", "debugging"},
    "server": {"__init__", "common", "events", "deadline", "isolation", "pipeline", "proto", "farm"},
    "command": {"clients", "server"},  # the `smug` executable: serve -> server, the rest -> clients
    "__init__": {"pipeline"},
    "__main__": {"command"},
}


def _layer(path: Path) -> str:
    rel = path.relative_to(ROOT)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _modules() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.py") if p.relative_to(ROOT).parts[0] not in SCRIPTS
                  and "_pb2" not in p.name)


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported smug module) for every import of ``path``."""
    return imports_of(path.read_text(), ["smug", *path.relative_to(ROOT).parent.parts])


def imports_of(source: str, package: list[str]) -> list[tuple[int, str]]:
    """(line, smug module) for every import in ``source`` (a module of ``package``), relative ones resolved."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            out += [(node.lineno, f"smug.{a.name}" if base == "smug" and _is_module(a.name) else base)
                    for a in node.names]
    return [(line, name) for line, name in out if name == "smug" or name.startswith("smug.")]


def _is_module(name: str) -> bool:
    """``from smug import name``: a sub-module or package (else an attribute of the root package)."""
    return (ROOT / name).is_dir() or (ROOT / f"{name}.py").is_file()


def violations(layer: str, imports: list[tuple[int, str]]) -> list[str]:
    return [f"line {line}: {name}" for line, name in imports
            if _target_layer(name) != layer and _target_layer(name) not in ALLOWED.get(layer, set())]


def _target_layer(module: str) -> str:
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


MODULES = _modules()


def test_every_module_has_a_layer():
    unknown = sorted({_layer(p) for p in MODULES} - set(ALLOWED))
    assert not unknown, f"give these top-level modules/folders a place in ALLOWED: {unknown}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_follow_the_layers(path):
    layer = _layer(path)
    bad = violations(layer, _imports(path))
    assert not bad, f"{path.relative_to(ROOT)} ({layer}) may not import: {bad}"


def test_server_and_clients_never_import_each_other():
    for path in MODULES:
        layer = _layer(path)
        if layer in ("server", "clients"):
            other = {"server": "clients", "clients": "server"}[layer]
            assert all(_target_layer(n) != other for _, n in _imports(path)), path


def test_no_private_name_is_imported_from_another_package():
    bad = []
    for path in MODULES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("smug."):
                other = _target_layer(node.module) != _layer(path)
                bad += [f"{path.relative_to(ROOT)}: {a.name} from {node.module}" for a in node.names
                        if other and a.name.startswith("_")]
    assert not bad, bad


def test_the_checker_finds_forbidden_imports():
    """Deferred, relative and plain imports upwards are all caught; allowed ones pass."""
    deferred = "def f():\n    from smug.pipeline import run\n    return run\n"
    assert violations("encoders", imports_of(deferred, ["smug", "encoders"])) == ["line 2: smug.pipeline"]
    relative = "from ..clients import cli\n"
    assert violations("server", imports_of(relative, ["smug", "server"])) == ["line 1: smug.clients"]
    assert violations("solver", imports_of("import smug.encoders.smug\n", ["smug", "solver"]))
    assert not violations("pipeline", imports_of("from smug.solver.solve import solve\n", ["smug", "pipeline"]))


def doc_table(text: str) -> dict[str, set[str]]:
    """The 'Who may import whom' table of docs/architecture.md as {layer: layers it may import}."""
    body = text.split("### Who may import whom", 1)[1]
    rows = [line for line in body.splitlines() if line.startswith("| `")]
    name = lambda cell: cell.strip().strip("`").removesuffix("/").removesuffix(".py")  # noqa: E731
    out = {}
    for row in rows:
        layer, allowed = row.strip("|").split("|")
        out[name(layer)] = {name(c) for c in allowed.split(",") if c.strip() != "(nothing)"}
    return out


def test_the_architecture_docs_table_is_the_checked_one():
    """docs/architecture.md states the layering this test enforces, row for row (issue 27)."""
    assert doc_table((ROOT / "docs" / "architecture.md").read_text()) == ALLOWED


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(["smug", *(parts[:-1] if parts[-1] == "__init__" else parts)])


def package_circles(package: str) -> list[list[str]]:
    """Import circles among the modules of ``package`` (every import, deferred ones too; the
    package's ``__init__`` re-exports are left out)."""
    mods = {_module_name(p): p for p in MODULES if p.relative_to(ROOT).parts[0] == package
            and p.name != "__init__.py"}
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        graph[name] = set()
        for _, imported in _imports(path):
            while imported not in mods and "." in imported:
                imported = imported.rsplit(".", 1)[0]
            if imported in mods and imported != name:
                graph[name].add(imported)
    return circles(graph)


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of two or more nodes (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while True:
                w = stack.pop()
                part.append(w)
                if w == v:
                    break
            if len(part) > 1:
                circles.append(sorted(part))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return circles


PACKAGES = sorted({p.relative_to(ROOT).parts[0] for p in MODULES if len(p.relative_to(ROOT).parts) > 1})


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_circle_inside_a_package(package):
    assert package_circles(package) == []


def test_the_circle_finder_finds_circles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e", "d"}, "f": {"g"}, "g": {"f"}}
    assert sorted(circles(graph)) == [["a", "b", "c"], ["f", "g"]]
    assert circles({"a": {"b"}, "b": set()}) == []
