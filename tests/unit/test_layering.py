"""Layering rules checked on the source: no private names imported across modules."""

from __future__ import annotations

import ast
from pathlib import Path

import evalkit

SRC = Path(evalkit.__file__).resolve().parent
#: Packages whose modules may import no private name (``_x``) from another module.
CHECKED = ("core", "did", "synth", "dml", "multilevel", "inference", "numerics", "data", "report")


def private_imports(package: str) -> list[str]:
    found = []
    for path in sorted((SRC / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("evalkit"):
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        found.append(f"{path.relative_to(SRC)}:{node.lineno} {alias.name}")
    return found


def test_the_scan_finds_private_imports(tmp_path, monkeypatch):
    pkg = tmp_path / "did"
    pkg.mkdir()
    (pkg / "a.py").write_text("from evalkit.did.event_study import _roles\n", encoding="utf-8")
    monkeypatch.setattr(f"{__name__}.SRC", tmp_path)
    assert private_imports("did") == ["did/a.py:1 _roles"]


def test_no_private_imports_across_modules():
    found = [hit for package in CHECKED for hit in private_imports(package)]
    assert not found, f"give these helpers a public name in a shared module: {found}"


def test_the_study_layer_names_no_estimator():
    """Study code reads what it needs from estimator classes, never by registry name."""
    from evalkit.core import registry

    known = set(registry.names()) | {"DDD"}
    found = []
    for path in sorted((SRC / "study").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in known:
                found.append(f"{path.relative_to(SRC)}:{node.lineno} {node.value!r}")
    assert not found, f"declare it on the estimator class instead: {found}"


def test_estimators_declare_what_the_study_layer_reads():
    from evalkit.core import registry
    from evalkit.study.config import _within_unit

    within = [n for n in registry.names() if registry.get(n).within_unit]
    assert within == ["did.TripleDiff"]
    assert _within_unit() == "did.TripleDiff"
    assert registry.get("did.TripleDiff").effect_term == "DDD"
    assert registry.get("did.TWFE").effect_term is None  # its term is the treatment column
