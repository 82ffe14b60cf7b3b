"""Designs with known effects for measuring inference: size, power, coverage, length.

Each design draws a panel from a seeded :class:`numpy.random.Generator` with a planted
constant effect of the treatment, so the truth of every test and interval is known.

- :func:`cities`: cities observed monthly, ``n_treated`` of them treated from month
  ``reform`` on, with city and month effects and AR(1) city-month shocks (the Bergen
  design: one treated city of ten, 60 months, reform in month 27). With
  ``persons_per_city`` the rows are persons within cities (unequal city sizes via
  ``size_ratio``), so clusters hold many units and differ in size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from evalkit.errors import DesignError

__all__ = ["DESIGNS", "Design", "cities"]


def cities(
    rng: np.random.Generator,
    *,
    effect: float = 0.0,
    n_cities: int = 10,
    n_treated: int = 1,
    n_months: int = 60,
    reform: int = 27,
    rho: float = 0.5,
    shock_sd: float = 1.25,
    persons_per_city: int = 0,
    size_ratio: float = 1.0,
    person_sd: float = 1.0,
) -> pd.DataFrame:
    """Draw a city panel with AR(1) city-month shocks and a constant effect ``effect``.

    ``shock_sd`` is the stationary standard deviation of a city's monthly shock (the
    default 1.25 makes an effect of 3 about 2.4 of them); ``rho`` its autocorrelation.
    With ``persons_per_city = 0`` there is one row per city and month (unit = city);
    otherwise each city has persons (the largest ``size_ratio`` times the smallest,
    sizes geometric across cities; the treated cities are the smallest) with their own
    effects and noise of sd ``person_sd``.

    Examples
    --------
    >>> df = cities(np.random.default_rng(0))
    >>> df.shape, int(df["d"].sum())
    ((600, 5), 33)
    """
    if not 1 <= n_treated < n_cities:
        raise DesignError("n_treated must be between 1 and n_cities - 1", column="n_treated")
    if not 0 < reform < n_months:
        raise DesignError("reform must fall inside the months", column="reform")
    innov = rng.normal(size=(n_cities, n_months)) * shock_sd * np.sqrt(1 - rho**2)
    shock = np.empty((n_cities, n_months))
    shock[:, 0] = rng.normal(size=n_cities) * shock_sd
    for t in range(1, n_months):
        shock[:, t] = rho * shock[:, t - 1] + innov[:, t]
    city_fe = rng.normal(size=n_cities)
    month_fe = rng.normal(size=n_months) * 0.5 + 0.02 * np.arange(n_months)
    treated = np.arange(n_cities) < n_treated
    if persons_per_city <= 0:
        city = np.repeat(np.arange(n_cities), n_months)
        month = np.tile(np.arange(n_months), n_cities)
        d = (treated[city] & (month >= reform)).astype(int)
        y = city_fe[city] + month_fe[month] + shock[city, month] + effect * d
        return pd.DataFrame({"unit": city, "city": city, "month": month, "d": d, "y": y})
    sizes = np.round(persons_per_city * size_ratio ** (np.linspace(0, 1, n_cities) - 0.5)).astype(
        int
    )
    sizes = np.maximum(sizes, 2)
    city_of = np.repeat(np.arange(n_cities), sizes)
    n_p = len(city_of)
    person = np.repeat(np.arange(n_p), n_months)
    month = np.tile(np.arange(n_months), n_p)
    city = city_of[person]
    d = (treated[city] & (month >= reform)).astype(int)
    y = (
        city_fe[city]
        + rng.normal(size=n_p)[person]
        + month_fe[month]
        + shock[city, month]
        + effect * d
        + rng.normal(size=len(person)) * person_sd
    )
    return pd.DataFrame({"unit": person, "city": city, "month": month, "d": d, "y": y})


@dataclass(frozen=True)
class Design:
    """A named design with known effect.

    ``draw(rng, effect)`` returns a panel with columns ``unit, city, month, d, y``
    (cluster = city).
    """

    name: str
    description: str
    options: dict[str, Any] = field(default_factory=dict)

    def draw(self, rng: np.random.Generator, effect: float = 0.0) -> pd.DataFrame:
        """Draw one panel with the planted effect."""
        return cities(rng, effect=effect, **self.options)

    @property
    def n_treated(self) -> int:
        """Number of treated clusters."""
        return int(self.options.get("n_treated", 1))


DESIGNS: dict[str, Design] = {
    d.name: d
    for d in (
        Design(
            "one_of_ten",
            "1 treated city of 10, 60 months, reform in month 27, AR(1) city-month shocks "
            "(rho 0.5, sd 1.25)",
            {"n_treated": 1},
        ),
        Design(
            "three_of_ten",
            "3 treated cities of 10, otherwise as one_of_ten",
            {"n_treated": 3},
        ),
        Design(
            "three_of_thirty",
            "3 treated cities of 30 (few treated, many controls), otherwise as one_of_ten",
            {"n_treated": 3, "n_cities": 30},
        ),
        Design(
            "eight_of_twenty",
            "8 treated cities of 20 (5+ treated), otherwise as one_of_ten",
            {"n_treated": 8, "n_cities": 20},
        ),
        Design(
            "unequal_sizes",
            "2 treated of 12 cities of persons (10 to 90 per city, the treated smallest), "
            "person effects and noise sd 2, city-month shocks sd 0.5, 40 months, reform in "
            "month 20",
            {
                "shock_sd": 0.5,
                "n_treated": 2,
                "n_cities": 12,
                "n_months": 40,
                "reform": 20,
                "persons_per_city": 30,
                "size_ratio": 9.0,
                "person_sd": 2.0,
            },
        ),
    )
}
