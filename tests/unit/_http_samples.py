"""Reading the HTTP metrics back from a parsed exposition (shared by the ASGI and WSGI tests)."""

from __future__ import annotations

from ..conftest import Samples

REQUESTS = "modelmon_http_requests_total"
DURATION = "modelmon_http_request_duration_seconds"


def requests_of(samples: Samples, **labels: str) -> float:
    """Sum of the request counter over series whose labels include ``labels``."""
    return sum(
        v
        for (name, lab), v in samples.items()
        if name == REQUESTS and all(dict(lab).get(k) == want for k, want in labels.items())
    )


def routes_of(samples: Samples) -> set[str]:
    return {dict(lab)["route"] for (name, lab), _ in samples.items() if name == REQUESTS}
