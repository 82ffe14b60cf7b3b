"""Register-like simulated data with planted, known effects.

Studies run by default on simulated data that look like the confidential registers
(same column names), so that a study can be developed, tested and taught anywhere and
then run unchanged on a real extract inside a secure server. Every simulator returns a
:class:`SimulatedData`: the microdata, the true effects planted in them, and a
description.

Examples
--------
>>> from evalkit.simulate import bergen_rates, names
>>> "bergen_rates" in names() and "integration_trial" in names()
True
>>> sim = bergen_rates(seed=1, n_persons=300)
>>> sim.term, sorted(sim.truth)[:4]
('treated', ['activity', 'benefit', 'duration', 'earnings'])
"""

from evalkit.simulate import integration as integration
from evalkit.simulate.base import SimulatedData, get, names, options, register, schema
from evalkit.simulate.bergen import bergen_rates
from evalkit.simulate.designs import DESIGNS, cities
from evalkit.simulate.harness import SimulationSummary, simulate_inference
from evalkit.simulate.integration import (
    integration_jem,
    integration_pathways,
    integration_trial,
    integration_youth,
)

__all__ = [
    "DESIGNS",
    "SimulatedData",
    "SimulationSummary",
    "bergen_rates",
    "cities",
    "get",
    "integration_jem",
    "integration_pathways",
    "integration_trial",
    "integration_youth",
    "names",
    "options",
    "register",
    "schema",
    "simulate_inference",
]
