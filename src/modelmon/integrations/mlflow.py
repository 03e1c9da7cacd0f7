"""MLflow: reference profiles stored with the model, drift snapshots logged to runs.

Public API (re-exported by :mod:`modelmon.mlflow`): :func:`log_reference`,
:func:`resolve_reference`, :func:`log_snapshot` and :func:`snapshot_metrics`.
``Monitor(reference="runs:/..." | "models:/...")`` and ``Monitor.log_to_mlflow`` use
them. Needs the ``mlflow`` extra (``mlflow-skinny`` is enough for a client).

Resolution happens once, at start-up: an unreachable tracking server or a missing
artifact raises :class:`~modelmon.ConfigurationError` naming the URI. A plain HTTP
probe of the server comes first, so a stopped server fails at once instead of after
MLflow's client retries.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError, require
from ..profile import ReferenceProfile

if TYPE_CHECKING:
    from ..monitor import Monitor
    from ..report.snapshot import Snapshot

DEFAULT_ARTIFACT_PATH = "modelmon"
PROFILE_FILE = "reference.json"
#: Run tag naming the profile's artifact path, so ``models:/`` URIs find it.
REFERENCE_TAG = "modelmon.reference"
_PROBE_TIMEOUT_S = 5.0
_KEY_RE = re.compile(r"[^A-Za-z0-9_\-. /:]")
_BATCH = 1000  # MLflow's limit of metrics per log_batch call


def _mlflow() -> Any:
    require("mlflow", "mlflow")
    import mlflow

    return mlflow


def _run_id(mlflow: Any, run_id: str | None, caller: str) -> str:
    """``run_id``, else the active run's id; ConfigurationError naming ``caller`` without one."""
    if run_id is not None:
        return run_id
    active = mlflow.active_run()
    if active is None:
        raise ConfigurationError(f"{caller} needs an active MLflow run or run_id=")
    return str(active.info.run_id)


def _client(tracking_uri: str | None) -> Any:
    mlflow = _mlflow()
    return mlflow.MlflowClient(tracking_uri=tracking_uri)


# --- logging a profile --------------------------------------------------------------------


def log_reference(
    profile: ReferenceProfile,
    artifact_path: str = DEFAULT_ARTIFACT_PATH,
    *,
    run_id: str | None = None,
    tracking_uri: str | None = None,
) -> str:
    """Log ``profile`` as ``<artifact_path>/reference.json`` of a run; return its URI.

    The run is ``run_id`` or the active run. Also logs the params
    ``modelmon.features``, ``modelmon.rows`` and ``modelmon.fingerprint`` and the tag
    ``modelmon.reference`` (the artifact path, read by ``models:/`` resolution)::

        with mlflow.start_run():
            mlflow.sklearn.log_model(model, name="model")
            uri = modelmon.mlflow.log_reference(profile)  # "runs:/<id>/modelmon/reference.json"
    """
    mlflow = _mlflow()
    run_id = _run_id(mlflow, run_id, "log_reference")
    client = _client(tracking_uri)
    path = f"{artifact_path.strip('/')}/{PROFILE_FILE}"
    logged = client.get_run(run_id).data.params.get("modelmon.fingerprint")
    if logged is not None and logged != profile.fingerprint:  # params are immutable
        raise ConfigurationError(
            f"run {run_id} already holds reference profile {logged}; "
            "log one reference profile per run"
        )
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, PROFILE_FILE)
        profile.save(local)
        client.log_artifact(run_id, local, artifact_path.strip("/"))
    rows = max((f.count for f in profile.features.values()), default=0)
    for key, value in (
        ("modelmon.features", len(profile.features)),
        ("modelmon.rows", rows),
        ("modelmon.fingerprint", profile.fingerprint),
    ):
        client.log_param(run_id, key, value)
    client.set_tag(run_id, REFERENCE_TAG, path)
    return f"runs:/{run_id}/{path}"


# --- resolving a reference URI -------------------------------------------------------------


@dataclass(frozen=True)
class ResolvedReference:
    """A profile fetched from MLflow, with where it came from."""

    uri: str
    profile: ReferenceProfile
    run_id: str
    model_name: str | None = None
    model_version: str | None = None


def is_mlflow_uri(reference: object) -> bool:
    """True for ``runs:/...`` and ``models:/...`` strings."""
    return isinstance(reference, str) and reference.startswith(("runs:/", "models:/"))


def resolve_reference(uri: str, *, tracking_uri: str | None = None) -> ResolvedReference:
    """Fetch the profile named by ``uri`` from MLflow (raises ConfigurationError).

    ``runs:/<run_id>/<path to the profile JSON>``; ``models:/<name>/<version>`` or
    ``models:/<name>@<alias>``: the profile logged (by :func:`log_reference`) with the
    run of that registered model version.
    """
    mlflow = _mlflow()
    tracking = tracking_uri or mlflow.get_tracking_uri()
    _probe(f"cannot resolve reference {uri!r}", tracking)
    try:
        if uri.startswith("runs:/"):
            run_id, _, path = uri[len("runs:/") :].partition("/")
            if not run_id or not path:
                raise ConfigurationError(
                    f"reference {uri!r}: expected runs:/<run_id>/<path to the profile JSON>"
                )
            return ResolvedReference(uri, _download(uri, tracking), run_id)
        return _resolve_model(uri, tracking)
    except ConfigurationError:
        raise
    except Exception as exc:
        raise ConfigurationError(
            f"cannot resolve reference {uri!r} from the MLflow tracking server {tracking!r}: "
            f"{_short(exc)}"
        ) from exc


def _resolve_model(uri: str, tracking: str) -> ResolvedReference:
    rest = uri[len("models:/") :].strip("/")
    name, at, alias = rest.partition("@")
    version = ""
    if not at:
        name, _, version = rest.partition("/")
    if not name or not (alias or version) or "/" in (alias or version):
        raise ConfigurationError(
            f"reference {uri!r}: expected models:/<name>/<version> or models:/<name>@<alias>"
        )
    client = _client(tracking)
    if alias:
        mv = client.get_model_version_by_alias(name, alias)
    else:
        mv = client.get_model_version(name, version)
    if not mv.run_id:
        raise ConfigurationError(f"reference {uri!r}: model version {mv.version} has no run")
    tags = client.get_run(mv.run_id).data.tags
    path = tags.get(REFERENCE_TAG, f"{DEFAULT_ARTIFACT_PATH}/{PROFILE_FILE}")
    profile = _download(f"runs:/{mv.run_id}/{path}", tracking)
    return ResolvedReference(uri, profile, mv.run_id, name, str(mv.version))


def _download(artifact_uri: str, tracking: str) -> ReferenceProfile:
    mlflow = _mlflow()
    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=artifact_uri, dst_path=tmp, tracking_uri=tracking
        )
        return ReferenceProfile.load(local)


def _probe(what: str, tracking: str) -> None:
    """Fail fast, naming ``what``, when an HTTP tracking server does not answer."""
    if not tracking.startswith(("http://", "https://")):
        return
    url = tracking.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=_PROBE_TIMEOUT_S) as resp:
            resp.read()
    except urllib.error.HTTPError:
        return  # it answered: let the MLflow client report what it thinks
    except (OSError, ValueError) as exc:
        raise ConfigurationError(
            f"{what}: the MLflow tracking server {tracking!r} is unreachable ({_short(exc)})"
        ) from exc


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


# --- logging a snapshot -------------------------------------------------------------------


def snapshot_metrics(snap: Snapshot) -> dict[str, float]:
    """The MLflow metrics of a snapshot (keys as documented in ``docs/mlflow.md``).

    Per feature: ``drift.<f>.<method>`` (the exported ``feature_drift`` gauges),
    ``drift.<f>.detected`` (1/0), ``drift.<f>.pvalue.<method>`` when exported,
    ``missing_share.<f>`` and ``invalid_share.<f>``. Per output: ``prediction.<o>.<method>``
    and ``prediction.<o>.q<quantile>``. Then ``confidence.mean``, ``performance.<metric>``,
    ``requests``, ``predictions``, ``errors`` and ``features_drifted``.
    """
    from ..report.snapshot import DRIFT, NO_DATA

    out: dict[str, float] = {
        "requests": snap.requests,
        "predictions": snap.predictions,
        "errors": snap.errors,
        "features_drifted": float(len(snap.drifted)),
    }
    for m in snap.features:
        for method, value in m.scores.items():
            out[f"drift.{m.name}.{method}"] = value
        for method, value in m.pvalues.items():
            out[f"drift.{m.name}.pvalue.{method}"] = value
        if m.decision != NO_DATA:
            out[f"drift.{m.name}.detected"] = 1.0 if m.decision == DRIFT else 0.0
        if m.missing_share is not None:
            out[f"missing_share.{m.name}"] = m.missing_share
        if m.missing_detected is not None:
            out[f"missing_share.{m.name}.detected"] = m.missing_detected
        if m.invalid_share is not None:
            out[f"invalid_share.{m.name}"] = m.invalid_share
    for m in snap.outputs:
        for method, value in m.scores.items():
            out[f"prediction.{m.name}.{method}"] = value
        for q, value in m.live_quantiles.items():
            out[f"prediction.{m.name}.q{q:g}"] = value
    if snap.confidence_count:
        out["confidence.mean"] = snap.confidence_sum / snap.confidence_count
    for metric, value in snap.performance.items():
        out[f"performance.{metric}"] = value
    return {_key(k): float(v) for k, v in out.items() if not math.isnan(float(v))}


def _key(key: str) -> str:
    return _KEY_RE.sub("_", key)[:250]


def log_snapshot(
    monitor: Monitor,
    run_id: str | None = None,
    step: int | None = None,
    *,
    tracking_uri: str | None = None,
) -> dict[str, float]:
    """Log ``monitor``'s snapshot as metrics of ``run_id`` (or the active run); return them."""
    from ..report.snapshot import monitor_snapshot

    mlflow = _mlflow()
    run_id = _run_id(mlflow, run_id, "log_to_mlflow")
    snap = monitor_snapshot(monitor)
    values = snapshot_metrics(snap)
    Metric = mlflow.entities.Metric
    stamp = int(snap.taken_at * 1000)
    metrics = [Metric(k, v, stamp, step or 0) for k, v in values.items()]
    client = _client(tracking_uri)
    for i in range(0, len(metrics), _BATCH):
        client.log_batch(run_id, metrics=metrics[i : i + _BATCH])
    return values


# --- periodic logging ---------------------------------------------------------------------


class PeriodicLogger:
    """Logs a monitor's snapshot every ``interval_s`` from a daemon thread.

    Failures never leave the thread: each is counted in
    ``modelmon_internal_errors_total{stage="mlflow"}`` (and logged once per kind).
    """

    def __init__(
        self,
        monitor: Monitor,
        interval_s: float,
        run_id: str,
        tracking_uri: str | None = None,
    ) -> None:
        self.monitor = monitor
        self.interval_s = float(interval_s)
        self.run_id = run_id
        self.tracking_uri = tracking_uri
        self.step = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"modelmon-mlflow-{monitor.model}", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.log_once()

    def log_once(self) -> None:
        try:
            log_snapshot(self.monitor, self.run_id, self.step, tracking_uri=self.tracking_uri)
            self.step += 1
        except Exception as exc:
            self.monitor.health.error("mlflow", exc)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the thread; a log call in flight (a slow server) is not waited for long."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=timeout_s)


def start_periodic(
    monitor: Monitor,
    interval_s: float,
    run_id: str | None,
    tracking_uri: str | None = None,
    run_name: str | None = None,
) -> PeriodicLogger:
    """Check the server once (raising ConfigurationError) and start a :class:`PeriodicLogger`.

    Without ``run_id`` the active run is used, else a new run is created in the
    current experiment, tagged with the model and version.
    """
    if not interval_s or interval_s <= 0 or not math.isfinite(interval_s):
        raise ConfigurationError(f"log_every_s must be a positive number, got {interval_s!r}")
    mlflow = _mlflow()
    tracking = tracking_uri or mlflow.get_tracking_uri()
    _probe(f"cannot log to MLflow run {run_id!r}", tracking)
    try:
        client = _client(tracking)
        if run_id is None:
            active = mlflow.active_run()
            if active is not None:
                run_id = active.info.run_id
            else:
                experiment = _experiment_id(client)
                run = client.create_run(
                    experiment,
                    run_name=run_name or f"modelmon {monitor.model} {monitor.version}",
                    tags=_run_tags(monitor),
                )
                run_id = run.info.run_id
        else:
            client.get_run(run_id)
    except Exception as exc:
        raise ConfigurationError(
            f"cannot log to MLflow run {run_id!r} at {tracking!r}: {_short(exc)}"
        ) from exc
    return PeriodicLogger(monitor, interval_s, run_id, tracking)


def _run_tags(monitor: Monitor) -> Mapping[str, str]:
    return {
        "modelmon.model": monitor.model,
        "modelmon.version": monitor.version,
        "modelmon.started_at": str(int(time.time())),
    }


def _experiment_id(client: Any) -> str:
    """``MLFLOW_EXPERIMENT_ID``, else ``MLFLOW_EXPERIMENT_NAME`` (created if new), else "0"."""
    if os.environ.get("MLFLOW_EXPERIMENT_ID"):
        return os.environ["MLFLOW_EXPERIMENT_ID"]
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME")
    if not name:
        return "0"
    found = client.get_experiment_by_name(name)
    return str(found.experiment_id) if found is not None else str(client.create_experiment(name))
