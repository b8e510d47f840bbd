"""The package's layers (cells -> gradients -> networks -> learners -> envs -> experiments ->
cli, bench): no module imports from a layer below its own, and module-level imports form no
cycle."""

import ast
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "src"
LAYERS = ["cells", "gradients", "networks", "learners", "envs", "experiments", "cli", "bench"]


def _modules() -> dict[str, Path]:
    modules = {}
    for path in (SOURCE / "rtrl").rglob("*.py"):
        parts = path.relative_to(SOURCE).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def _imports(tree: ast.AST, modules: dict[str, Path], top_level_only: bool) -> set[str]:
    """The rtrl modules a module imports (``from pkg import sub`` counts as ``pkg.sub``)."""
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("rtrl"))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("rtrl"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in modules else node.module)
    return found


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def test_no_module_imports_from_a_layer_below_its_own():
    modules = _modules()
    upward = []
    for name, path in modules.items():
        mine = _layer(name)
        for imported in _imports(ast.parse(path.read_text()), modules, top_level_only=False):
            theirs = _layer(imported)
            if mine is not None and theirs is not None and theirs > mine:
                upward.append(f"{name} imports {imported}")
    assert not upward, upward


def test_module_level_imports_form_no_cycle():
    modules = _modules()
    graph = {name: _imports(ast.parse(path.read_text()), modules, top_level_only=True)
             for name, path in modules.items()}  # fmt: skip
    state: dict[str, str] = {}

    def visit(name: str, trail: list[str]) -> None:
        state[name] = "open"
        for imported in sorted(graph.get(name, ())):
            if state.get(imported) == "open":
                raise AssertionError(" -> ".join([*trail, name, imported]))
            if imported not in state:
                visit(imported, [*trail, name])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [])
