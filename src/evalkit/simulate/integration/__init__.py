"""Simulators of the service-integration study (one module per part of the design).

Importing the package registers its simulators (``integration_trial``,
``integration_pathways``, ``integration_jem``) with :mod:`evalkit.simulate.base`.
"""

from evalkit.simulate.integration.exposure import integration_jem
from evalkit.simulate.integration.pathways import integration_pathways
from evalkit.simulate.integration.trial import integration_trial

__all__ = ["integration_jem", "integration_pathways", "integration_trial"]
