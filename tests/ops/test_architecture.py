"""The code keeps its shape: layers (import-linter), imports at module top, no private
names across packages, no pointers to documents outside the repository."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
APP = ROOT / "app"


def _modules() -> list[tuple[str, ast.Module]]:
    found = []
    for path in sorted(APP.rglob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        found.append((name.removesuffix(".__init__"), ast.parse(path.read_text(), str(path))))
    return found


def _imported(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    return [node.module or ""]


def function_level_app_imports(tree: ast.Module) -> list[int]:
    """Lines of imports of an `app` module inside a function or class body."""
    lines = []
    for scope in ast.walk(tree):
        if not isinstance(scope, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        for node in ast.walk(scope):
            if isinstance(node, ast.Import | ast.ImportFrom) and any(
                name == "app" or name.startswith("app.") for name in _imported(node)
            ):
                lines.append(node.lineno)
    return sorted(set(lines))


def private_imports(module: str, tree: ast.Module) -> list[str]:
    """`from app.<other package>... import _name` in `module`."""
    package = module.split(".")[:2]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("app."):
            source = (node.module or "").split(".")
            if source[:2] == package:
                continue
            found += [
                f"{module}: {node.module}.{a.name}" for a in node.names if a.name.startswith("_")
            ]
    return found


def test_no_function_level_import_of_an_app_module() -> None:
    offenders = {
        module: lines for module, tree in _modules() if (lines := function_level_app_imports(tree))
    }
    assert offenders == {}


def test_the_import_check_finds_a_function_level_import() -> None:
    tree = ast.parse("def f():\n    from app.payments import gateway\n")
    assert function_level_app_imports(tree) == [2]


def test_no_private_name_is_imported_from_another_package() -> None:
    offenders = [hit for module, tree in _modules() for hit in private_imports(module, tree)]
    assert offenders == []


def test_the_private_name_check_finds_one() -> None:
    tree = ast.parse("from app.kit.money import _digits\nfrom app.credits.store import _x\n")
    assert private_imports("app.credits.service", tree) == [
        "app.credits.service: app.kit.money._digits"
    ]


def test_layers_contract_holds() -> None:
    """`lint-imports` (configured in pyproject.toml) also runs in scripts/test."""
    result = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:]


def test_code_points_only_inside_the_repository() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("app", "tests", "bench", "scripts")
        for path in (ROOT / folder).rglob("*")
        if path.is_file()
        and path.suffix in {".py", ".sh", ".sql", ""}
        and path.name != Path(__file__).name
        and any(doc in path.read_text(errors="replace") for doc in ("DESIGN.md", "API.md"))
    ]
    assert offenders == []
