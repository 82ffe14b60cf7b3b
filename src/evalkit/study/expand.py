"""Expand one ``[[analysis]]`` table into analyses, checked against their estimator.

An analysis table names an estimator from the registry; its options are checked against
the estimator's constructor, its inference method against what the estimator supports,
its ``group``, ``where``, ``split_by``, ``by``, ``collapse_by``, ``fit_on`` and ``table`` against
the study, and ``expand`` turns it into one analysis per combination of values, each
with its own seed (:func:`derive_seed`).
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import zlib
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np

from evalkit.core import registry
from evalkit.data.collapse import flags
from evalkit.data.sandbox import check_expression
from evalkit.errors import DesignError, EvalkitError, InferenceNotSupportedError
from evalkit.inference.spec import Inference, method_name
from evalkit.study.locate import Source, check_keys, located, table_name
from evalkit.study.schema import NAME_PATTERN
from evalkit.study.spec import AnalysisSpec, CollapseSpec, SplitSpec

__all__ = ["STUDY_LEVEL_KEYS", "analyses", "derive_seed"]

#: Analysis keys that describe the study's rows, never estimator options.
STUDY_LEVEL_KEYS = ("group", "where", "split_by", "by")
#: The cell key of ``split_by = "<group>"`` is this prefix plus the group's name.
SPLIT_PREFIX = "in_"


def derive_seed(study_seed: int, analysis_id: str) -> int:
    """Return the seed of one analysis, fixed by the study seed and the analysis id.

    It does not depend on the order of the analyses, so adding one leaves the others'
    results unchanged.

    Examples
    --------
    >>> derive_seed(1, "a") == derive_seed(1, "a") != derive_seed(1, "b")
    True
    """
    ss = np.random.SeedSequence([int(study_seed), zlib.crc32(analysis_id.encode("utf-8"))])
    return int(ss.generate_state(1, dtype=np.uint32)[0])


def _inference(
    src: Source, value: Any, index: int, cls: type, name: str, analysis_id: str
) -> Inference | None:
    if value is None:
        return None
    supported = tuple(getattr(cls, "supported_inference", ()))
    try:
        if isinstance(value, str):
            spec = Inference(method_name(value, supported or None))
        else:
            rest = {k: v for k, v in value.items() if k not in ("method", "cluster", "reps")}
            spec = Inference(
                value["method"],
                cluster=value.get("cluster"),
                reps=value.get("reps"),
                options=rest,
            )
        spec = spec.typed()
    except DesignError as err:
        raise located(err, src, "analysis", index) from None
    if supported and spec.method not in supported:
        raise InferenceNotSupportedError(
            f"{src.where('analysis', 'inference', index)}: analysis {analysis_id!r}: {name} "
            f"does not support inference={spec.method!r}",
            hint=f"supported: {', '.join(supported)}",
            column="inference",
        )
    return spec


def _undefined(
    src: Source, key: str, index: int, message: str, name: str, known: list[str], listing: str
) -> DesignError:
    """Return the error for a name the study does not define, with the closest known one."""
    close = difflib.get_close_matches(name, known, n=1)
    return DesignError(
        f"{src.where('analysis', key, index)}: {message}",
        hint=(f"did you mean {close[0]!r}? " if close else "") + listing,
        column=key,
    )


def _text(src: Source, value: Any, key: str, index: int, example: str = "") -> str:
    """Check that an expanded value of ``key`` is a string."""
    if not isinstance(value, str):
        raise DesignError(
            f"{src.where('analysis', key, index)}: {key} in {table_name('analysis', index)} "
            f"must be str, got {value!r}",
            hint=f"e.g. {example}" if example else None,
            column=key,
        )
    return value


def _fields(cls: type) -> dict[str, dataclasses.Field[Any]]:
    if dataclasses.is_dataclass(cls):
        return {f.name: f for f in dataclasses.fields(cls) if f.init}
    import inspect

    params = inspect.signature(cls).parameters
    return {k: None for k in params if k != "self"}  # type: ignore[misc]


def analyses(
    src: Source,
    table: Mapping[str, Any],
    index: int,
    *,
    roles: Mapping[str, Any],
    groups: Mapping[str, str | None],
    collapse: CollapseSpec | None,
    tables: Mapping[str, Any],
    seed: int,
    level: float,
) -> list[AnalysisSpec]:
    """Check one ``[[analysis]]`` table against its estimator and expand it.

    ``table`` has passed :class:`~evalkit.study.schema.Analysis` (keys and types).
    """
    base = table["id"]
    name = table["estimator"]
    try:
        cls = registry.get(name)
    except DesignError as err:
        raise DesignError(
            f"{src.where('analysis', 'estimator', index)}: analysis {base!r}: {err.message}",
            hint=err.hint,
            column="estimator",
        ) from None
    data_table, fit_on = _fit_on(src, table, index, collapse, tables)
    cells = fit_on == "cells"
    fields = _fields(cls)
    options = dict(table.get("options", {}))
    check_keys(src, options, sorted(fields), "analysis.options", index, what=f"{name} option")
    expand = table.get("expand", {})
    allowed_expand = sorted({*fields, *STUDY_LEVEL_KEYS})
    check_keys(src, expand, allowed_expand, "analysis.expand", index, what="expand key")
    for key in expand:
        clash = key in options or (key in STUDY_LEVEL_KEYS and key in table)
        if clash:
            raise DesignError(
                f"{src.where('analysis.expand', key, index)}: {key!r} is given both in "
                "expand and directly",
                hint="keep one",
                column=key,
            )
    collapse_by = _collapse_by(
        src, table.get("collapse_by"), index, collapse if cells else None, rows=not cells
    )
    title = table.get("title", base)
    a_level = float(table.get("level", level))
    explicit_seed = table.get("seed")
    inference = _inference(src, table.get("inference"), index, cls, name, base)

    keys = list(expand)
    combos = list(itertools.product(*(expand[k] for k in keys))) if keys else [()]
    out = []
    for combo in combos:
        labels = dict(zip(keys, combo, strict=True))
        aid = ".".join([base, *(str(v) for v in combo)])
        group = labels.get("group", table.get("group", "all"))
        _text(src, group, "group", index)
        if group not in groups:
            raise _undefined(
                src,
                "group",
                index,
                f"analysis {aid!r} uses group {group!r}, which [groups] does not define",
                group,
                list(groups),
                f"groups: {', '.join(groups)}",
            )
        extra = labels.get("where", table.get("where"))
        if extra is not None:
            _text(src, extra, "where", index)
            check_expression(extra, key="where", where=src.where("analysis", "where", index))
        conditions = [c for c in (groups[group], extra) if c]
        where = " AND ".join(f"({c})" for c in conditions) if len(conditions) > 1 else None
        if len(conditions) == 1:
            where = " ".join(conditions[0].split())
        kwargs: dict[str, Any] = {r: v for r, v in roles.items() if r in fields}
        kwargs.update(options)
        kwargs.update(
            {k: v for k, v in labels.items() if k in fields and k not in STUDY_LEVEL_KEYS}
        )
        split = _split(
            src,
            labels.get("split_by", table.get("split_by")),
            index,
            aid=aid,
            name=name,
            fields=fields,
            options=options,
            groups=groups,
            group=group,
            collapse=collapse if cells else None,
            keys=collapse_by,
        )
        by = _by(
            src,
            labels.get("by", table.get("by")),
            index,
            aid=aid,
            cls=cls,
            split=split,
            collapse=collapse if cells else None,
            keys=collapse_by,
        )
        if split is not None:
            kwargs["group"] = split.column
            if split.is_group:
                kwargs["target"] = 1
        if cells and collapse is not None and "weights" in fields and kwargs.get("weights") is None:
            kwargs["weights"] = collapse.weight_for(kwargs.get("outcome"))
        if isinstance(kwargs.get("covariates"), list):
            kwargs["covariates"] = tuple(kwargs["covariates"])
        missing = [
            k
            for k, f in fields.items()
            if f is not None
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
            and k not in kwargs
        ]
        if missing:
            hint = "set it in [roles], in the analysis options, or in expand"
            if "group" in missing:
                hint = (
                    'compare groups within units with split_by = "<a [groups] name>" (or '
                    "a column, with options.target), or set options.group and options.target"
                )
            raise DesignError(
                f"{src.where('analysis', None, index)}: analysis {aid!r}: {name} needs "
                f"{', '.join(missing)}",
                hint=hint,
                column=missing[0],
            )
        try:
            cls(**kwargs)
        except EvalkitError as err:
            raise located(err, src, "analysis", index) from None
        except TypeError as exc:
            raise DesignError(
                f"{src.where('analysis', None, index)}: analysis {aid!r}: {name} rejects its "
                f"options: {exc}",
                column="options",
            ) from None
        out.append(
            AnalysisSpec(
                id=aid,
                family=base,
                estimator=name,
                title=title,
                kwargs=MappingProxyType(kwargs),
                inference=inference,
                level=a_level,
                seed=explicit_seed if explicit_seed is not None else derive_seed(seed, aid),
                group=group,
                where=where,
                custom_where=extra is not None,
                labels=MappingProxyType(labels),
                table_index=index,
                split=split,
                collapse_by=collapse_by,
                fit_on=fit_on,
                table=data_table,
                by=by,
            )
        )
    return out


def _by(
    src: Source,
    value: Any,
    index: int,
    *,
    aid: str,
    cls: type,
    split: SplitSpec | None,
    collapse: CollapseSpec | None,
    keys: tuple[str, ...] | None,
) -> str | None:
    """Validate ``by`` of one analysis: a column whose subgroups the fit compares."""
    if value is None:
        return None
    key = "by"
    _text(src, value, key, index, example='by = "household"')
    where = src.where("analysis", key, index)
    if not NAME_PATTERN.match(value):
        raise DesignError(
            f"{where}: by {value!r} must be a column name (letters, digits and '_')",
            hint='e.g. by = "household" (a column of the data or of [columns])',
            column=key,
        )
    name = getattr(cls, "registry_name", cls.__name__)
    if not getattr(cls, "supports_by", False):
        raise DesignError(
            f"{where}: analysis {aid!r}: {name} does not compare subgroups (by=): its "
            "results have no per-cluster scores or placebo runs to compare them with",
            hint="fit each subgroup as its own analysis (group = ...), or use an estimator "
            "that supports by (did.TWFE, synth.SyntheticControl, dml.DID, ...)",
            column=key,
        )
    if split is not None:
        raise DesignError(
            f"{where}: analysis {aid!r}: by and split_by both add a group dimension",
            hint="keep one: split_by compares a group with the rest of its unit within one "
            "fit (did.TripleDiff); by fits each subgroup and tests that they are equal",
            column=key,
        )
    if collapse is not None:
        taken = [*(keys or collapse.by), *collapse.columns]
        if value in taken and value not in (keys or collapse.by):
            raise DesignError(
                f"{where}: by {value!r} would add cell key {value!r}, which [collapse] "
                "already makes as a measure or count",
                hint="rename the measure or the count, or split by another column",
                column=key,
            )
    return value


def _fit_on(
    src: Source,
    table: Mapping[str, Any],
    index: int,
    collapse: CollapseSpec | None,
    tables: Mapping[str, Any],
) -> tuple[str | None, str]:
    """Return the analysis' data table (None: ``[data]``) and ``fit_on``."""
    name = table.get("table")
    if name is not None and name not in tables:
        raise _undefined(
            src,
            "table",
            index,
            f"table {name!r} is not defined",
            name,
            list(tables),
            f"define it as [data.tables.{name}] (with file, query or simulator)"
            + (f"; tables: {', '.join(tables)}" if tables else ""),
        )
    default = "cells" if collapse is not None and name is None else "rows"
    fit_on = table.get("fit_on", default)
    where = src.where("analysis", "fit_on", index)
    if fit_on == "cells" and collapse is None:
        raise DesignError(
            f'{where}: fit_on = "cells" needs [collapse] (its cell keys and measures)',
            hint='add [collapse], or use fit_on = "rows" (with collapse_by to average rows '
            "within keys)",
            column="fit_on",
        )
    if fit_on == "cells" and name is not None:
        raise DesignError(
            f'{where}: fit_on = "cells" with table = {name!r}: [collapse] applies to the '
            "main [data] only",
            hint=f'use fit_on = "rows" on table {name!r} (collapse_by averages its rows '
            "within keys), or drop table to use the main data's cells",
            column="fit_on",
        )
    return name, fit_on


def _collapse_by(
    src: Source, value: Any, index: int, collapse: CollapseSpec | None, rows: bool = False
) -> tuple[str, ...] | None:
    """Validate an analysis' own cell keys (or, on rows, the keys its rows are averaged in)."""
    if value is None:
        return None
    where = src.where("analysis", "collapse_by", index)
    if collapse is None and not rows:
        raise DesignError(
            f"{where}: collapse_by needs [collapse] (its measures and count)",
            hint="add [collapse] with by and measures, or drop collapse_by",
            column="collapse_by",
        )
    value = [value] if isinstance(value, str) else value
    dup = sorted({v for v in value if value.count(v) > 1})
    if dup:
        raise DesignError(
            f"{where}: collapse_by names {dup[0]!r} twice",
            hint="name each key once",
            column="collapse_by",
        )
    if collapse is None:
        return tuple(value)
    clash = [v for v in value if v in flags(collapse.measures, collapse.count)]
    if clash:
        raise DesignError(
            f"{where}: cell key {clash[0]!r} is also a measure or count column of [collapse]",
            hint="rename the measure or the count column",
            column="collapse_by",
        )
    return tuple(value)


def _within_unit() -> str:
    """Name the registered estimators that compare groups within units (for hints)."""
    return ", ".join(n for n in registry.names() if registry.get(n).within_unit)


def _split(
    src: Source,
    value: Any,
    index: int,
    *,
    aid: str,
    name: str,
    fields: Mapping[str, Any],
    options: Mapping[str, Any],
    groups: Mapping[str, str | None],
    group: str,
    collapse: CollapseSpec | None,
    keys: tuple[str, ...] | None = None,
) -> SplitSpec | None:
    """Validate ``split_by`` of one analysis and return its :class:`SplitSpec`."""
    if value is None:
        return None
    key = "split_by"
    _text(src, value, key, index, example='split_by = "families_with_children"')
    where = src.where("analysis", key, index)
    if "group" not in fields or "target" not in fields:
        raise DesignError(
            f"{where}: analysis {aid!r}: split_by adds a group dimension to the cells, "
            f"but {name} does not compare groups (it has no group and target options)",
            hint=f"use an estimator that compares groups within units ({_within_unit()}), "
            'or select rows with group = "..."',
            column=key,
        )
    if "group" in options:
        raise DesignError(
            f"{where}: analysis {aid!r}: split_by and options.group both name the group column",
            hint="keep split_by (it sets group) or drop it and give options.group",
            column=key,
        )
    if value not in groups:
        # a column of the data (checked against the columns when they can be read)
        names = [g for g in groups if g != "all"]
        if not NAME_PATTERN.match(value) or "target" not in options:
            close = difflib.get_close_matches(value, names, n=1)
            raise DesignError(
                f"{where}: split_by {value!r} is neither a [groups] name nor a column with "
                "options.target",
                hint=(f"did you mean {close[0]!r}? " if close else "")
                + f"groups: {', '.join(names) or '(none)'}; to split by a column of the "
                "data, give the targeted value(s) in options.target",
                column=key,
            )
        return SplitSpec(value, value)
    if groups[value] is None:
        raise DesignError(
            f"{where}: analysis {aid!r}: split_by {value!r} puts every row in one group, "
            "leaving none to compare with",
            hint=f"split by a subgroup: {', '.join(g for g in groups if g != 'all')}",
            column=key,
        )
    if value == group:
        raise DesignError(
            f"{where}: analysis {aid!r} selects the rows of group {value!r} and splits them "
            f"by the same group, leaving none to compare with",
            hint='use group = "all" (or another group) to choose the rows',
            column=key,
        )
    if "target" in options:
        raise DesignError(
            f"{where}: analysis {aid!r}: split_by = {value!r} compares the rows in that "
            "group (target 1) with the rest; options.target is not needed",
            hint="remove options.target",
            column="target",
        )
    column = SPLIT_PREFIX + value
    cell_columns = [] if collapse is None else [*(keys or collapse.by), *collapse.columns]
    if column in cell_columns:
        raise DesignError(
            f"{where}: split_by {value!r} would add cell column {column!r}, which [collapse] "
            "already makes",
            hint="rename the measure, the count or the cell key",
            column=key,
        )
    return SplitSpec(value, column, groups[value])
