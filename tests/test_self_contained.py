"""A clone of the repository alone builds and tests: nothing the tests or CI run reaches outside it."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def _reaches_shared(tree: ast.AST) -> list[int]:
    """Lines building a path to ``../shared``: one string, or ``".." / "shared"`` pieces."""
    docstrings = _docstrings(tree)
    lines = []
    for node in ast.walk(tree):
        is_text = isinstance(node, ast.Constant) and isinstance(node.value, str)
        if is_text and id(node) not in docstrings and "../shared" in node.value:
            lines.append(node.lineno)
        if isinstance(node, ast.BinOp | ast.Call):
            parts = {
                n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)
            }
            if {"..", "shared"} <= parts:
                lines.append(node.lineno)
    return lines


def test_no_test_file_builds_a_path_to_the_shared_folder_beside_the_clone() -> None:
    offenders = []
    for path in (REPO / "tests").rglob("*.py"):
        if path == Path(__file__).resolve():
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        offenders += [f"{path.relative_to(REPO)}:{line}" for line in _reaches_shared(tree)]
    assert offenders == []


def test_neither_the_makefile_nor_ci_nor_the_project_file_names_the_shared_folder() -> None:
    ci = [p for p in (REPO / ".ci").iterdir() if p.is_file()]
    files = [REPO / "Makefile", REPO / "pyproject.toml", *ci]
    assert [str(p.relative_to(REPO)) for p in files if "../shared" in p.read_text(encoding="utf-8")] == []


def test_the_redfish_mockup_is_in_the_repository_with_its_licence() -> None:
    mockup = REPO / "tests" / "fixtures" / "redfish"
    assert (mockup / "LICENSE-DMTF.md").is_file()
    assert (mockup / "public-rackmount1" / "index.json").is_file()
