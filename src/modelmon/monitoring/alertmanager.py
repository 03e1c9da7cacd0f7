"""Alertmanager routing for the generated alerts: by severity, grouped per model version.

``page`` goes to the pager receiver, ``ticket`` to the ticket receiver, ``critical`` and
``warning`` to the chat receiver. Receivers are webhook placeholders on 127.0.0.1, to be
replaced by real integrations (PagerDuty, Opsgenie, Slack, a ticket system).

>>> cfg = render_alertmanager_config(MonitoringConfig(), webhook_url="http://127.0.0.1:5001/")
>>> [r["receiver"] for r in cfg["route"]["routes"]]
['modelmon-pager', 'modelmon-ticket', 'modelmon-chat']
"""

from __future__ import annotations

from typing import Any

from modelmon.monitoring.config import MonitoringConfig

PLACEHOLDER_URL = "http://127.0.0.1:9095/{receiver}"
GROUP_BY = ("alertname", "model", "version")


def receivers(config: MonitoringConfig) -> dict[str, str]:
    """Receiver name by role: ``pager``, ``ticket``, ``chat``."""
    ns = config.namespace
    return {"pager": f"{ns}-pager", "ticket": f"{ns}-ticket", "chat": f"{ns}-chat"}


def render_alertmanager_config(
    config: MonitoringConfig,
    webhook_url: str | None = None,
    group_wait: str = "30s",
    group_interval: str = "5m",
    repeat_interval: str = "4h",
) -> dict[str, Any]:
    """The Alertmanager configuration as a dict.

    With ``webhook_url`` every receiver posts there (the payload's ``receiver`` field tells
    them apart); without it each posts to a placeholder ``http://127.0.0.1:9095/<receiver>``.
    """
    names = receivers(config)

    def webhook(receiver: str) -> dict[str, Any]:
        url = webhook_url or PLACEHOLDER_URL.format(receiver=receiver)
        return {"name": receiver, "webhook_configs": [{"send_resolved": True, "url": url}]}

    return {
        "route": {
            "receiver": names["chat"],
            "group_by": list(GROUP_BY),
            "group_wait": group_wait,
            "group_interval": group_interval,
            "repeat_interval": repeat_interval,
            "routes": [
                {"matchers": ['severity="page"'], "receiver": names["pager"]},
                {
                    "matchers": ['severity="ticket"'],
                    "receiver": names["ticket"],
                    "repeat_interval": "24h",
                },
                {"matchers": ['severity=~"critical|warning"'], "receiver": names["chat"]},
            ],
        },
        "inhibit_rules": [
            # The warning twin of a critical alert (same name, model, feature) adds nothing.
            {
                "source_matchers": ['severity="critical"'],
                "target_matchers": ['severity="warning"'],
                "equal": ["alertname", "model", "version", "feature", "output"],
            },
            # A fast burn that pages makes its slow-burn ticket redundant.
            {
                "source_matchers": ['severity="page"'],
                "target_matchers": ['severity="ticket"'],
                "equal": ["alertname", "model", "version"],
            },
        ],
        "receivers": [webhook(names[role]) for role in ("pager", "ticket", "chat")],
    }
