"""Simulated register data for the service-integration study.

Each module registers one simulator (see :func:`evalkit.simulate.get`):

- :mod:`~evalkit.simulate.integration.youth`: ``"integration_youth"``, young people
  16-29 by year in municipalities of three countries, their NEET status and the
  organisation of the local labour and welfare office.

Examples
--------
>>> from evalkit.simulate.integration import integration_youth
>>> integration_youth(seed=1, n_persons=2000).name
'integration_youth'
"""

from evalkit.simulate.integration.youth import integration_youth

__all__ = ["integration_youth"]
