"""The registry of estimators: names such as ``"did.TWFE"`` map to estimator classes.

Study files and the command line name estimators by their registry name (``family.Class``
inside ``evalkit``). The built-in estimators are listed in a static table of
``"module:Class"`` targets, so :func:`names` and an unknown-name error import no
estimator module and :func:`get` imports only the module that defines the class asked
for. Third-party estimators register themselves with the :func:`register` decorator
(the built-in ones use it too, which sets their ``registry_name``).
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, TypeVar

from evalkit.errors import DesignError

if TYPE_CHECKING:  # pragma: no cover
    from evalkit.core.estimator import Estimator

__all__ = ["BUILTIN", "get", "names", "register"]

#: The built-in estimators: registry name -> ``"module:Class"`` (imported on first use).
BUILTIN: Mapping[str, str] = {
    "did.BaconDecomposition": "evalkit.did.bacon:BaconDecomposition",
    "did.CallawaySantAnna": "evalkit.did.callaway_santanna:CallawaySantAnna",
    "did.EventStudy": "evalkit.did.event_study:EventStudy",
    "did.HonestEventStudy": "evalkit.did.honest_event_study:HonestEventStudy",
    "did.ImputationDiD": "evalkit.did.imputation:ImputationDiD",
    "did.SunAbraham": "evalkit.did.sun_abraham:SunAbraham",
    "did.TWFE": "evalkit.did.twfe:TWFE",
    "did.TripleDiff": "evalkit.did.triple_diff:TripleDiff",
    "dml.DID": "evalkit.dml.did:DID",
    "dml.DIDMulti": "evalkit.dml.did_multi:DIDMulti",
    "dml.IIVM": "evalkit.dml.models:IIVM",
    "dml.IRM": "evalkit.dml.models:IRM",
    "dml.PLIV": "evalkit.dml.models:PLIV",
    "dml.PLPR": "evalkit.dml.panel:PLPR",
    "dml.PLR": "evalkit.dml.models:PLR",
    "multilevel.MixedModel": "evalkit.multilevel.mixed:MixedModel",
    "selection.ObservedExpected": "evalkit.selection.observed_expected:ObservedExpected",
    "exposure.JobExposure": "evalkit.exposure.job_exposure:JobExposure",
    "sequence.Typology": "evalkit.sequence.typology:Typology",
    "synth.AugmentedSyntheticControl": "evalkit.synth.augmented:AugmentedSyntheticControl",
    "synth.SyntheticControl": "evalkit.synth.synthetic_control:SyntheticControl",
    "synth.SyntheticDiD": "evalkit.synth.synthetic_did:SyntheticDiD",
    "trial.ITT": "evalkit.trial.itt:ITT",
    "trial.IV2SLS": "evalkit.trial.iv:IV2SLS",
}
_REGISTRY: dict[str, type[Estimator]] = {}

E = TypeVar("E", bound="type[Estimator]")


def register(name: str) -> Callable[[E], E]:
    """Class decorator that registers an estimator under ``name`` (e.g. ``"did.TWFE"``).

    A third-party estimator registers itself when its module is imported; after that,
    :func:`get` and study files find it by ``name``.
    """

    def decorate(cls: E) -> E:
        existing = _REGISTRY.get(name)
        if existing is not None and existing is not cls:
            raise RuntimeError(f"estimator name {name!r} registered twice")
        _REGISTRY[name] = cls
        cls.registry_name = name
        return cls

    return decorate


def names() -> list[str]:
    """Return the sorted registry names of every available estimator (importing none).

    Examples
    --------
    >>> "did.TWFE" in names()
    True
    """
    return sorted({*BUILTIN, *_REGISTRY})


def _load(name: str, target: str) -> type[Estimator]:
    module_name, _, class_name = target.partition(":")
    cls: type[Estimator] = getattr(importlib.import_module(module_name), class_name)
    if cls.registry_name != name:  # the table and the class's @register disagree
        raise RuntimeError(f"{target} is registered as {cls.registry_name!r}, not {name!r}")
    _REGISTRY[name] = cls
    return cls


def get(name: str) -> type[Estimator]:
    """Return the estimator class registered as ``name``, importing only its module.

    Raises
    ------
    DesignError
        If no estimator has that name; the message suggests the closest names.

    Examples
    --------
    >>> get("did.TWFE").__name__
    'TWFE'
    """
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name in BUILTIN:
        return _load(name, BUILTIN[name])
    available = names()
    close = difflib.get_close_matches(name, available, n=3, cutoff=0.5)
    hint = f"did you mean {' or '.join(map(repr, close))}?" if close else None
    raise DesignError(
        f"unknown estimator {name!r}; available: {', '.join(available)}",
        hint=hint or "run `evalkit estimators` to list the estimators",
        column="estimator",
    )
