"""The roles know env families only through the envs' hooks: no module of sparring/agents imports a family's
module (countdown, textnav, tooluse, ...), at the top or inside a function."""

import ast
from pathlib import Path

import sparring.agents

SHARED = {"sparring.envs", "sparring.envs.base", "sparring.envs.catalog", "sparring.envs.grading", "sparring.envs.expr"}


def imported_modules(source: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names if node.module == "sparring.envs"}
    return found


def test_agents_import_no_family_module():
    folder = Path(sparring.agents.__file__).parent
    offenders = {f"{path.name}: {name}" for path in sorted(folder.glob("*.py"))
                 for name in imported_modules(path.read_text()) if name.startswith("sparring.envs") and name not in SHARED}
    assert offenders == set()


def test_the_walk_sees_imports_inside_functions():
    source = "def f():\n    from sparring.envs.countdown import extract_answer\n    from sparring.envs import textnav\n"
    assert {"sparring.envs.countdown", "sparring.envs.textnav"} <= imported_modules(source)
