"""The package's layers import one way: a module may import its own layer and the layers below, never above.

Every import is walked, at the top of a module and inside functions alike (an import inside a function hides
a cycle, it does not remove it). The layers, lowest first, are the README's Layout section.
"""

import ast
from pathlib import Path

import pytest

import sparring

PACKAGE = Path(sparring.__file__).parent

# module (or package prefix) -> layer; the longest matching prefix wins
LAYERS = {
    "sparring.errors": 0, "sparring.io": 0, "sparring.config": 0, "sparring.trajectories": 0, "sparring.seeds": 0,
    "sparring.tracking": 0,
    "sparring.envs": 1, "sparring.sandboxes": 1, "sparring.conformance": 1,
    "sparring.policies": 2,
    "sparring.solver": 3, "sparring.executors": 3, "sparring.search": 3, "sparring.evaluation": 3,
    "sparring.context": 3, "sparring.stages": 3,
    "sparring.trainers": 4,
    "sparring.agents": 5,
    "sparring.report": 6, "sparring.selfplay_config": 6,
    "sparring.selfplay": 7,
    "sparring.cli": 8, "sparring.play": 8, "sparring.integrations": 8, "sparring": 8,
}
NAMES = ["errors, io, config, trajectories, seeds, tracking", "envs, sandboxes", "policies",
         "solver, executors, search, evaluation, run context", "trainers", "agents",
         "the loop's config and report", "the loop", "cli"]


def layer(module: str) -> int:
    best = max((prefix for prefix in LAYERS if module == prefix or module.startswith(prefix + ".")), key=len)
    return LAYERS[best]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, module: str) -> dict[str, int]:
    """The sparring modules `path` (the module `module`) imports anywhere in it, each with its first import's line."""
    found: dict[str, int] = {}
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            names = [base]
            # `from sparring.x import y`: y may be a module of its own
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                if (PACKAGE.parent / (candidate.replace(".", "/") + ".py")).exists() or \
                        (PACKAGE.parent / candidate.replace(".", "/") / "__init__.py").exists():
                    names.append(candidate)
        for name in names:
            if name == "sparring" or name.startswith("sparring."):
                found.setdefault(name, node.lineno)
    return found


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}
GRAPH = {name: imports(path, name) for name, path in MODULES.items()}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_imports_no_layer_above_its_own(module):
    own = layer(module)
    upward = [f"line {line}: {name} ({NAMES[layer(name)]})" for name, line in GRAPH[module].items()
              if layer(name) > own and name != "sparring"]
    assert not upward, f"{module} ({NAMES[own]}) imports a layer above its own: " + "; ".join(upward)


def test_no_module_imports_the_package_root_from_below_the_cli():
    """`import sparring` pulls in the loop lazily: modules below the cli import `sparring.envs` to register envs."""
    low = [module for module, deps in GRAPH.items() if "sparring" in deps and layer(module) < layer("sparring.cli")]
    assert not low, f"these import the package root instead of what they need: {low}"


def test_the_imports_close_no_cycle():
    def resolve(name: str) -> str | None:  # `sparring.envs.catalog.make` -> the module it names
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        return name or None

    edges = {module: {m for d in deps if (m := resolve(d)) and m != module and not module.startswith(m + ".")
                      and not m == "sparring"}
             for module, deps in GRAPH.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for dep in sorted(edges[module]):
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep):] + [dep]
                pytest.fail("an import cycle: " + " -> ".join(cycle))
            if not state.get(dep):
                visit(dep)
        stack.pop()
        state[module] = 2

    for module in sorted(edges):
        if not state.get(module):
            visit(module)


def test_the_walk_sees_imports_inside_functions_and_relative_ones(tmp_path):
    source = tmp_path / "probe.py"
    source.write_text("def f():\n    from sparring.selfplay import run\n    import sparring.agents.proposer\n"
                      "    from ..trainers import sft\n")
    assert set(imports(source, "sparring.agents.probe")) == {"sparring.selfplay", "sparring.agents.proposer",
                                                              "sparring.trainers", "sparring.trainers.sft"}
