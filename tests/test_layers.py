"""Imports of `accelsim/` run one way: no import cycles, and only the command line
(`accelsim/cli/`) imports the model builders of `workloads/`.

The import graph is read from the source with `ast` (every `import` and `from ... import`,
including those inside functions), never by importing the package. `from pkg import name` is an
edge to the submodule `pkg.name` if there is one, else to `pkg` (its `__init__`); importing a
submodule is not counted as importing its parent package's `__init__`.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "accelsim"

# training in accelsim.quant knows no hardware: only `quant.machine` runs the machine
HARDWARE = ("accelsim.frontend", "accelsim.sim", "accelsim.units", "accelsim.runner")


def _modules() -> dict[str, Path]:
    mods = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        mods[".".join(parts)] = path
    return mods


def _imports(name: str, path: Path, mods: dict) -> set[str]:
    """Names imported by module `name`: modules of the package, or any other top-level name."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from .x import y
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([node.module] if node.module else []))
            for a in node.names:
                sub = f"{base}.{a.name}"
                found.add(sub if sub in mods else base)
    return found


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {name: _imports(name, path, mods) for name, path in mods.items()}


def _cycles(graph: dict[str, set[str]]) -> list[tuple[str, ...]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in graph or w == v:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(tuple(sorted(comp)))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _workloads_importers(graph) -> set[str]:
    return {
        name
        for name, deps in graph.items()
        if not (name == "accelsim.cli" or name.startswith("accelsim.cli."))
        and any(d == "workloads" or d.startswith("workloads.") for d in deps)
    }


def test_graph_sees_every_module_and_function_level_imports():
    """The reader finds the package's modules and an import made inside a function
    (`accelsim.cli.train` imports `workloads.trained` inside `_recipe_config`)."""
    graph = _graph()
    assert {"accelsim", "accelsim.cli", "accelsim.sim", "accelsim.kernels.gemm"} <= set(graph)
    assert "workloads.trained" in graph["accelsim.cli.train"]
    assert "accelsim.kernels.gemm" in graph["accelsim.units.matmul"]


def test_cycle_finder_on_a_known_graph():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": {"e"}, "e": {"d"}, "f": {"f"}}
    assert sorted(_cycles(graph)) == [("a", "b", "c"), ("d", "e")]


def test_no_import_cycles():
    cycles = _cycles(_graph())
    assert not cycles, f"import cycles among accelsim modules: {cycles}"


def test_only_the_cli_imports_workloads():
    found = _workloads_importers(_graph())
    assert not found, f"modules outside accelsim/cli/ that import workloads: {sorted(found)}"


def test_training_knows_no_hardware():
    graph = _graph()
    bad = {
        name: sorted(d for d in deps if d.startswith(HARDWARE))
        for name, deps in graph.items()
        if name.startswith("accelsim.quant") and name != "accelsim.quant.machine"
    }
    assert not {k: v for k, v in bad.items() if v}
