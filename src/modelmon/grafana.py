"""Public façade for ``modelmon.grafana.*`` imports; the code lives in :mod:`modelmon.monitoring`.

The package renders more than Grafana (Prometheus rules, rule tests, Alertmanager routing), so it
was renamed; this module re-exports its public names (see CHANGELOG).
"""

from __future__ import annotations

from modelmon import monitoring as _monitoring
from modelmon.monitoring import *  # noqa: F403  (the façade is the package's public names)

__all__ = list(_monitoring.__all__)
