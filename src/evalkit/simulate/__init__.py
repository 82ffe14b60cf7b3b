"""Register-like simulated data with planted, known effects.

Studies run by default on simulated data that look like the confidential registers
(same column names), so that a study can be developed, tested and taught anywhere and
then run unchanged on a real extract inside a secure server. Every simulator returns a
:class:`SimulatedData`: the microdata, the true effects planted in them, and a
description.

Examples
--------
>>> from evalkit.simulate import bergen_rates, names
>>> names()
['bergen_rates']
>>> sim = bergen_rates(seed=1, n_persons=300)
>>> sim.term, sorted(sim.truth)[:4]
('treated', ['activity', 'benefit', 'duration', 'earnings'])
"""

from evalkit.simulate.base import SimulatedData, get, names, options, register, schema
from evalkit.simulate.bergen import bergen_rates
from evalkit.simulate.designs import DESIGNS, cities
from evalkit.simulate.harness import SimulationSummary, simulate_inference

__all__ = [
    "DESIGNS",
    "SimulatedData",
    "SimulationSummary",
    "bergen_rates",
    "cities",
    "get",
    "names",
    "options",
    "register",
    "schema",
    "simulate_inference",
]
