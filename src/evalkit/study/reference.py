"""The study.toml reference: the JSON Schema, and a Markdown table of every key.

Both are generated from the pydantic models (:mod:`evalkit.study.schema`), so the
documentation cannot drift from what the validator accepts: ``evalkit schema`` prints
the JSON Schema, ``evalkit schema --markdown`` the key tables of the docs page
*study.toml reference*, and a test checks that the committed copies are current.
"""

from __future__ import annotations

import json
from typing import Any

from evalkit.study.design import json_schema

__all__ = ["markdown", "schema_text"]

#: Tables in the order of the reference, with the header the user writes.
_HEADERS = {
    "study": "[study]",
    "data": "[data]",
    "columns": "[columns]",
    "roles": "[roles]",
    "groups": "[groups]",
    "collapse": "[collapse]",
    "analysis": "[[analysis]]",
    "verify": "[verify]",
    "report": "[report]",
}


def schema_text() -> str:
    """Return the JSON Schema of study.toml as indented JSON text (ending in a newline).

    Examples
    --------
    >>> schema_text().startswith("{")
    True
    """
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


def _type(prop: dict[str, Any], defs: dict[str, Any]) -> str:
    """Name the type of one property's schema, briefly."""
    if "$ref" in prop:
        return "table"
    if "anyOf" in prop or "oneOf" in prop:
        options = prop.get("anyOf", prop.get("oneOf", []))
        kinds = [_type(p, defs) for p in options if p.get("type") != "null"]
        return " or ".join(dict.fromkeys(kinds))
    if "enum" in prop:
        return " or ".join(json.dumps(v) for v in prop["enum"])
    if "const" in prop:
        return json.dumps(prop["const"])
    kind = prop.get("type")
    if kind == "array":
        return f"list of {_type(prop.get('items', {}), defs)}"
    if kind == "object":
        values = prop.get("additionalProperties")
        if isinstance(values, dict) and values:
            return f"table of {_type(values, defs)}"
        return "table"
    names = {"string": "text", "integer": "integer", "number": "number", "boolean": "boolean"}
    return names.get(str(kind), "any")


def _rows(schema: dict[str, Any], defs: dict[str, Any]) -> list[str]:
    required = set(schema.get("required", []))
    out = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for key, prop in schema.get("properties", {}).items():
        default = "required" if key in required else json.dumps(prop.get("default"))
        default = "" if default == "null" else default
        meaning = _text(str(prop.get("description", ""))).replace("|", "\\|")
        out.append(f"| `{key}` | {_type(prop, defs)} | {default} | {meaning} |")
    return out


def _target(prop: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any] | None:
    """Find the table schema a property refers to (directly, in a list, or as values)."""
    if "$ref" in prop:
        return defs[prop["$ref"].rsplit("/", 1)[-1]]
    for option in [
        *prop.get("anyOf", []),
        *prop.get("oneOf", []),
        prop.get("items", {}),
        prop.get("additionalProperties") or {},
    ]:
        if isinstance(option, dict) and option:
            found = _target(option, defs)
            if found is not None:
                return found
    return None


def _text(description: str) -> str:
    return " ".join(description.replace("``", "`").split())


#: How a table inside a table is written, by (table, key).
_INNER = {
    ("data", "tables"): "[data.tables.<name>]",
    ("collapse", "measures"): "[collapse.measures] <name> = {...}",
    ("analysis", "inference"): "[[analysis]] inference = {...}",
    ("verify", "estimate"): "[verify] <column> = {...}",
}


def markdown() -> str:
    """Return a Markdown section per table of study.toml: its keys, types and defaults.

    Examples
    --------
    >>> "| `min_cell_size` | integer | 5 |" in markdown()
    True
    """
    schema = json_schema()
    defs = schema.get("$defs", {})
    lines: list[str] = []
    for key, header in _HEADERS.items():
        prop = schema["properties"][key]
        table = _target(prop, defs)
        lines += [f"### `{header}`", ""]
        about = (table or prop).get("description") or prop.get("description", "")
        if about:
            lines += [_text(about), ""]
        if table is None:
            lines += [f"Name to {_type(prop, defs).removeprefix('table of ')}.", ""]
            continue
        lines += [*_rows(table, defs), ""]
        for sub, sub_prop in table.get("properties", {}).items():
            inner = _target(sub_prop, defs)
            if inner is None or (key, sub) not in _INNER:
                continue
            lines += [f"#### `{_INNER[key, sub]}`", "", _text(inner.get("description", ""))]
            lines += ["", *_rows(inner, defs), ""]
    return "\n".join(lines).rstrip() + "\n"
