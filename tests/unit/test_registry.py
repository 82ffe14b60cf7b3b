"""The lazy registry: names without imports, ``get`` imports one module, third-party names.

Module sets are checked in a fresh interpreter (a subprocess) through ``sys.modules``.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import evalkit
from evalkit.core import registry
from evalkit.core.estimator import Estimator
from evalkit.errors import DesignError

SRC = Path(evalkit.__file__).resolve().parents[1]
FAMILIES = ("evalkit.did.", "evalkit.synth.", "evalkit.dml.")


def estimator_modules_after(statement: str) -> list[str]:
    """The estimator-family modules in ``sys.modules`` after ``statement`` (fresh interpreter)."""
    env = dict(os.environ, PYTHONPATH=str(SRC))
    probe = f"{statement}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, check=True, capture_output=True, text=True
    )
    mods = json.loads(out.stdout.strip().splitlines()[-1])
    assert "evalkit.core.registry" in mods  # the probe ran the statement
    return [m for m in mods if m.startswith(FAMILIES) or m in {"evalkit.synth", "evalkit.dml"}]


def test_names_imports_no_estimator_module():
    loaded = estimator_modules_after(
        "from evalkit.core import registry\nassert 'did.TWFE' in registry.names()"
    )
    assert loaded == [], loaded


def test_unknown_name_error_imports_no_estimator_module():
    loaded = estimator_modules_after(
        "from evalkit.core import registry\n"
        "try:\n    registry.get('did.TWEF')\nexcept Exception as e:\n"
        "    assert 'did.TWFE' in str(e), e\nelse:\n    raise SystemExit('no error')"
    )
    assert loaded == [], loaded


def test_get_imports_only_the_module_asked_for():
    loaded = estimator_modules_after(
        "from evalkit.core import registry\nassert registry.get('did.TWFE').__name__ == 'TWFE'"
    )
    assert "evalkit.did.twfe" in loaded
    assert not [m for m in loaded if "callaway" in m or "synth" in m or "triple" in m], loaded


def _decorated_names() -> set[str]:
    """Every ``@register("...")`` name in the estimator families' source.

    A family is any module that imports the registry's decorator, so a new family
    (``multilevel``, ``selection``, ...) is scanned without being listed here.
    """
    found = set()
    for path in sorted((SRC / "evalkit").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if "from evalkit.core.registry import register" not in text:
            continue
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef):
                for deco in node.decorator_list:
                    if (
                        isinstance(deco, ast.Call)
                        and getattr(deco.func, "id", None) == "register"
                        and isinstance(deco.args[0], ast.Constant)
                    ):
                        found.add(deco.args[0].value)
    return found


def test_static_table_matches_the_register_decorators():
    decorated = _decorated_names()
    assert "did.TWFE" in decorated  # the scan found the decorators
    missing = sorted(decorated - set(registry.BUILTIN))
    assert not missing, f"add to BUILTIN in evalkit/core/registry.py: {missing}"
    assert decorated == set(registry.BUILTIN), sorted(set(registry.BUILTIN) - decorated)
    for name in registry.BUILTIN:
        assert registry.get(name).registry_name == name


def test_unknown_name_suggests_the_closest():
    with pytest.raises(DesignError, match=r"unknown estimator 'did\.TWEF'") as err:
        registry.get("did.TWEF")
    assert "did.TWFE" in (err.value.hint or "")


def test_third_party_estimator_registers_and_is_listed(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @registry.register("mine.Constant")
    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Constant(Estimator):
        pass

    assert registry.get("mine.Constant") is Constant
    assert Constant.registry_name == "mine.Constant"
    assert "mine.Constant" in registry.names()
    with pytest.raises(RuntimeError, match="registered twice"):
        registry.register("mine.Constant")(type("Other", (Constant,), {}))


def test_get_imports_one_synthetic_control_estimator():
    loaded = estimator_modules_after(
        "from evalkit.core import registry\n"
        "assert registry.get('synth.SyntheticControl').__name__ == 'SyntheticControl'"
    )
    assert "evalkit.synth.synthetic_control" in loaded
    assert not [m for m in loaded if m.endswith(("synthetic_did", "augmented")) or ".did." in m]
