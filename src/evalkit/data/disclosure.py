"""Disclosure control: no count below the minimum cell size leaves the runner.

Register microdata are confidential; what a study writes (results, reports, manifests,
logs) must carry aggregates only, and every count that rests on fewer than
``min_cell_size`` persons must be suppressed and marked. :func:`protect` is the one
gate every output of the study runner passes through: it walks a JSON-like structure
and replaces each count-like value from 1 to ``min_cell_size - 1`` with None, marking
the record that held it with ``"suppressed": true`` and the names of the suppressed
fields in ``"suppressed_fields"``. :func:`audit` finds any count that would slip
through; the runner refuses to write output that fails the audit.

What counts as a count
    Keys named ``n``, ``count``, ``counts``, ``size``, ``n_<anything>``,
    ``<anything>_n``, ``<anything>_count(s)`` or ``<anything>_size`` with a numeric
    value; and every numeric value inside a mapping or list held under a count
    container key such as ``dropped`` or ``counts`` (rows dropped, by reason).
Structural numbers
    Keys that count parts of the design rather than persons (``n_periods``,
    ``df_resid``, ``n_fixed_effect_parameters``, ...) are exempt, see
    :data:`STRUCTURAL_KEYS`. When an analysis runs on collapsed cells, each of which
    rests on at least ``min_cell_size`` persons, counts of cells, units and clusters
    are counts of aggregates and are exempt too (:meth:`DisclosurePolicy.for_cells`).
Zeros
    A count of zero is not suppressed (nothing about a person is revealed by it).
"""

from __future__ import annotations

import copy
import math
import numbers
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from evalkit.errors import DesignError

__all__ = [
    "AGGREGATE_KEYS",
    "DEFAULT_MIN_CELL_SIZE",
    "STRUCTURAL_KEYS",
    "DisclosurePolicy",
    "audit",
    "check_min_cell_size",
    "is_count_key",
    "protect",
]

DEFAULT_MIN_CELL_SIZE = 5

#: Keys that count parts of the design, never persons.
STRUCTURAL_KEYS: frozenset[str] = frozenset(
    {
        "n_periods",
        "n_fixed_effect_parameters",
        "df_resid",
        "n_terms",
        "n_estimates",
        "n_reps",
        "n_rep",
        "n_folds",
        "n_analyses",
        "min_cell_size",
        "reps",
    }
)
#: Keys that count cells, units or clusters; exempt when the data are collapsed cells.
AGGREGATE_KEYS: frozenset[str] = frozenset(
    {
        "n_obs",
        "n_units",
        "n_clusters",
        "n_treated_clusters",
        "n_untreated_clusters",
        "n_treated_units",
        "n_control_units",
        "n_cells",
        "n_suppressed_cells",
        "n_groups",
        "n_cohorts",
        "dropped",
    }
)
#: Keys whose mapping or list values are all counts.
COUNT_CONTAINERS: frozenset[str] = frozenset(
    {"dropped", "counts", "sizes", "cohort_sizes", "group_sizes", "cell_counts"}
)
#: Keys of free text in which small whole numbers are masked when counts are of persons.
TEXT_KEYS: frozenset[str] = frozenset({"warnings", "messages", "message", "notes"})

_COUNT_KEY = re.compile(r"^(n|count|counts|size|sizes|freq)$|^n_|_n$|_counts?$|_size$")
_NUMBER_IN_TEXT = re.compile(r"(?<![\w.])(\d+)(?![\w.])")


def check_min_cell_size(value: Any) -> int:
    """Validate a minimum cell size (a whole number of at least 1) and return it.

    Examples
    --------
    >>> check_min_cell_size(5)
    5
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise DesignError(
            f"min_cell_size must be a whole number >= 1, got {value!r}",
            hint="the usual rule for register data is min_cell_size = 5",
            column="min_cell_size",
        )
    return int(value)


def is_count_key(key: str) -> bool:
    """Return True when a field of this name holds a count.

    Examples
    --------
    >>> is_count_key("n_obs"), is_count_key("n"), is_count_key("estimate")
    (True, True, False)
    """
    return bool(_COUNT_KEY.search(str(key)))


@dataclass(frozen=True)
class DisclosurePolicy:
    """The rules :func:`protect` applies.

    Parameters
    ----------
    min_cell_size
        Counts from 1 to ``min_cell_size - 1`` are suppressed.
    exempt
        Count-like keys that are never suppressed (they do not count persons).
    mask_text
        Mask small whole numbers in free text (warnings, notes), e.g. "dropped 3 rows".

    Examples
    --------
    >>> DisclosurePolicy(5).for_cells().is_exempt("n_units")
    True
    """

    min_cell_size: int = DEFAULT_MIN_CELL_SIZE
    exempt: frozenset[str] = field(default=STRUCTURAL_KEYS)
    mask_text: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "min_cell_size", check_min_cell_size(self.min_cell_size))
        object.__setattr__(self, "exempt", frozenset(self.exempt))

    def for_cells(self) -> DisclosurePolicy:
        """Return the policy for results on collapsed cells (counts of cells/units exempt)."""
        return replace(self, exempt=self.exempt | AGGREGATE_KEYS, mask_text=False)

    def is_exempt(self, key: str) -> bool:
        """Return True when ``key`` is never suppressed under this policy."""
        return key in self.exempt

    def is_small(self, value: Any) -> bool:
        """Return True for a number from just above 0 to below ``min_cell_size``."""
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return False
        v = float(value)
        return math.isfinite(v) and 0 < v < self.min_cell_size


def _policy(policy: DisclosurePolicy | int | None) -> DisclosurePolicy:
    if policy is None:
        return DisclosurePolicy()
    if isinstance(policy, DisclosurePolicy):
        return policy
    return DisclosurePolicy(policy)


def _mask(text: str, policy: DisclosurePolicy) -> str:
    def repl(match: re.Match[str]) -> str:
        return f"<{policy.min_cell_size}" if policy.is_small(int(match.group(1))) else match[0]

    return _NUMBER_IN_TEXT.sub(repl, text)


def protect(obj: Any, policy: DisclosurePolicy | int | None = None) -> tuple[Any, list[str]]:
    """Return a copy of ``obj`` with small counts suppressed, and the paths suppressed.

    Parameters
    ----------
    obj
        A JSON-like structure (mappings, lists, numbers, strings). Not modified.
    policy
        A :class:`DisclosurePolicy`, or just the minimum cell size.

    Returns
    -------
    tuple
        The protected copy, and the paths (``"analyses[0].info.n_obs"``) of every value
        that was suppressed.

    Examples
    --------
    >>> out, paths = protect({"n_obs": 3, "n_periods": 2, "estimate": 0.5}, 5)
    >>> out["n_obs"], out["n_periods"], out["suppressed"], out["suppressed_fields"]
    (None, 2, True, ['n_obs'])
    >>> paths
    ['n_obs']
    """
    pol = _policy(policy)
    paths: list[str] = []
    return _walk(copy.deepcopy(obj), pol, "", paths), paths


def _walk(obj: Any, pol: DisclosurePolicy, path: str, paths: list[str]) -> Any:
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        hidden: list[str] = []
        for key, value in obj.items():
            here = f"{path}.{key}" if path else str(key)
            exempt = pol.is_exempt(str(key))
            if not exempt and str(key) in COUNT_CONTAINERS and isinstance(value, Mapping | list):
                value, inner = _container(value, pol, here, paths)
                hidden += [f"{key}.{k}" for k in inner]
            elif not exempt and is_count_key(str(key)) and pol.is_small(value):
                value = None
                hidden.append(str(key))
                paths.append(here)
            elif pol.mask_text and str(key) in TEXT_KEYS:
                value = _text(value, pol)
            else:
                value = _walk(value, pol, here, paths)
            out[key] = value
        if hidden:
            out["suppressed"] = True
            previous = out.get("suppressed_fields") or []
            out["suppressed_fields"] = sorted({*previous, *hidden})
        return out
    if isinstance(obj, list | tuple):
        return [_walk(v, pol, f"{path}[{i}]", paths) for i, v in enumerate(obj)]
    return obj


def _container(
    value: Mapping[str, Any] | list[Any], pol: DisclosurePolicy, path: str, paths: list[str]
) -> tuple[Any, list[str]]:
    items = value.items() if isinstance(value, Mapping) else enumerate(value)
    out: dict[Any, Any] = {}
    hidden = []
    for k, v in items:
        if pol.is_small(v):
            out[k] = None
            hidden.append(str(k))
            paths.append(f"{path}.{k}")
        else:
            out[k] = v
    return (out if isinstance(value, Mapping) else list(out.values())), hidden


def _text(value: Any, pol: DisclosurePolicy) -> Any:
    if isinstance(value, str):
        return _mask(value, pol)
    if isinstance(value, list | tuple):
        return [_text(v, pol) for v in value]
    if isinstance(value, Mapping):
        return {k: _text(v, pol) for k, v in value.items()}
    return value


def audit(obj: Any, policy: DisclosurePolicy | int | None = None) -> list[str]:
    """Return the paths of count-like values below the minimum that are not suppressed.

    An empty list means ``obj`` passes. :func:`protect` output always passes.

    Examples
    --------
    >>> audit({"analyses": [{"info": {"n_units": 2}}]}, 5)
    ['analyses[0].info.n_units']
    >>> audit(protect({"n_units": 2}, 5)[0], 5)
    []
    """
    pol = _policy(policy)
    found: list[str] = []
    _audit(obj, pol, "", found)
    return found


def _audit(obj: Any, pol: DisclosurePolicy, path: str, found: list[str]) -> None:
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            here = f"{path}.{key}" if path else str(key)
            if pol.is_exempt(str(key)):
                continue
            if str(key) in COUNT_CONTAINERS and isinstance(value, Mapping | list):
                items: Iterable[tuple[Any, Any]] = (
                    value.items() if isinstance(value, Mapping) else enumerate(value)
                )
                found.extend(f"{here}.{k}" for k, v in items if pol.is_small(v))
            elif is_count_key(str(key)) and pol.is_small(value):
                found.append(here)
            else:
                _audit(value, pol, here, found)
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            _audit(v, pol, f"{path}[{i}]", found)
