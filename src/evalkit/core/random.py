"""Seeded randomness: every random draw in evalkit comes from a recorded numpy Generator.

No function in evalkit touches numpy's or Python's global random state. A ``seed`` given
by the user becomes a :class:`numpy.random.Generator`; when no seed is given, fresh
entropy is drawn and the resulting seed is recorded in the result, so any result can be
reproduced exactly.
"""

from __future__ import annotations

import numbers

import numpy as np

from evalkit.errors import DesignError

__all__ = ["SeedLike", "make_rng", "resolve_seed"]

SeedLike = int | np.integer | None


def resolve_seed(seed: SeedLike) -> int:
    """Return the integer seed to record, drawing fresh entropy when ``seed`` is None.

    Parameters
    ----------
    seed
        A non-negative integer, or None for fresh entropy.

    Returns
    -------
    int
        The seed that reproduces the run.

    Examples
    --------
    >>> resolve_seed(42)
    42
    >>> isinstance(resolve_seed(None), int)
    True
    """
    if seed is None:
        return int(np.random.SeedSequence().generate_state(1, dtype=np.uint64)[0] >> 1)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise DesignError(
            f"seed must be a non-negative integer or None, got {seed!r}",
            hint="pass seed=12345 (any whole number) to make results reproducible",
            column="seed",
        )
    if int(seed) < 0:
        raise DesignError(
            f"seed must be non-negative, got {seed}", hint="use seed=abs(seed)", column="seed"
        )
    return int(seed)


def make_rng(seed: SeedLike) -> tuple[np.random.Generator, int]:
    """Make a numpy Generator from ``seed`` and return it with the seed to record.

    Examples
    --------
    >>> rng, used = make_rng(7)
    >>> used, float(rng.random()) == float(make_rng(7)[0].random())
    (7, True)
    """
    used = resolve_seed(seed)
    return np.random.default_rng(used), used
