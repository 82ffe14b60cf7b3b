"""Simulated register data for the service-integration study.

Each module registers one simulator (see :func:`evalkit.simulate.get`):

- :mod:`~evalkit.simulate.integration.youth`: ``"integration_youth"``, young people
  16-29 by year in municipalities of three countries, their NEET status and the
  organisation of the local labour and welfare office.
- :mod:`~evalkit.simulate.integration.pathways`: ``"integration_pathways"``, a cohort of
  work-assessment-allowance recipients followed month by month through planted pathway
  types.
- :mod:`~evalkit.simulate.integration.trial`: ``"integration_trial"``, a trial whose
  controls partly receive similar help and whose treatment spills over to control
  caseworkers.
- :mod:`~evalkit.simulate.integration.exposure`: ``"integration_jem"``, survey exposures
  by occupation and register persons for a job exposure matrix.

Examples
--------
>>> from evalkit.simulate.integration import integration_youth
>>> integration_youth(seed=1, n_persons=2000).name
'integration_youth'
"""

from evalkit.simulate.integration.exposure import integration_jem
from evalkit.simulate.integration.pathways import integration_pathways
from evalkit.simulate.integration.trial import integration_trial
from evalkit.simulate.integration.youth import integration_youth

__all__ = ["integration_jem", "integration_pathways", "integration_trial", "integration_youth"]
