"""The layout shows the architecture: small modules, a core that never needs the demo, and the top level
the project's users asked for."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "curriculum_redis"
MAX_LINES = 450

TOP_LEVEL = {
    ".ci",
    ".gitignore",
    "README.md",
    "benchmarks",
    "curriculum_redis",
    "docker-compose.yml",
    "examples",
    "lua",
    "pyproject.toml",
    "tests",
}


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def package_path(module: Path) -> str:
    return module.relative_to(PACKAGE).as_posix()


@pytest.mark.parametrize("module", [package_path(m) for m in modules()])
def test_no_package_module_over_450_lines(module: str) -> None:
    lines = len((PACKAGE / module).read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"curriculum_redis/{module} has {lines} lines (at most {MAX_LINES}): split it by job"


def imported_modules(tree: ast.AST) -> list[tuple[str, ast.AST]]:
    """Every module an import statement names, with the statement (absolute imports only: the package
    uses no relative ones)."""
    found: list[tuple[str, ast.AST]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, node))
            found += [(f"{node.module}.{alias.name}", node) for alias in node.names]
    return found


def enclosing_functions(tree: ast.AST) -> dict[ast.AST, str]:
    """The name of the function each node sits in (module-level nodes are absent)."""
    where: dict[ast.AST, str] = {}
    for function in ast.walk(tree):
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            for node in ast.walk(function):
                where.setdefault(node, function.name)
    return where


def test_core_never_imports_demo() -> None:
    """The library runs without the demo subpackage: only the CLI's ``demo`` command imports it, lazily."""
    offenders = []
    for module in modules():
        path = package_path(module)
        if path.startswith("demo/"):
            continue
        tree = ast.parse(module.read_text(encoding="utf-8"))
        where = enclosing_functions(tree)
        for name, node in imported_modules(tree):
            if name != "curriculum_redis.demo" and not name.startswith("curriculum_redis.demo."):
                continue
            if path == "cli.py" and where.get(node) == "cmd_demo":
                continue
            offenders.append(f"curriculum_redis/{path}:{node.lineno} imports {name}")
    assert offenders == []


def test_core_runs_without_importing_demo() -> None:
    """Importing the library and building the CLI's parser loads nothing of ``curriculum_redis.demo``."""
    code = (
        "import sys, curriculum_redis, curriculum_redis.cli as cli; cli.build_parser(); "
        "print(sorted(m for m in sys.modules if m.startswith('curriculum_redis.demo')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO).stdout
    assert out.strip() == "[]"


def test_top_level_is_as_users_asked() -> None:
    tracked = subprocess.run(["git", "ls-files"], capture_output=True, text=True, check=True, cwd=REPO).stdout
    top = {line.split("/", 1)[0] for line in tracked.splitlines() if line}
    assert top == TOP_LEVEL


def test_demo_is_a_subpackage_of_its_own() -> None:
    demo = PACKAGE / "demo"
    assert {p.name for p in demo.glob("*.py")} >= {"__init__.py", "student.py", "server.py", "binaries.py", "run.py"}
    assert not (PACKAGE / "demo.py").exists()
