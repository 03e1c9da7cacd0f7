"""The metric catalogue: every metric name, type and label key, defined once.

Exporters, the Grafana dashboard, the rules and the docs/metrics.md catalogue are generated
from (or checked against) this module, so a name changes in one place only.

Prometheus names are ``{namespace}_{name}``; counters get ``_total`` appended by the
exposition (``requests`` -> ``modelmon_requests_total``). Every metric also carries
the ``model`` and ``version`` labels (:data:`BASE_LABELS`).

>>> REQUESTS.prometheus_name()
'modelmon_requests_total'
>>> FEATURE_DRIFT.otel_name
'modelmon.feature.drift'
"""

# Long module: the metric catalogue, one entry per metric, is meant to be read in one place.

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["counter", "gauge", "histogram", "summary", "exponential_histogram"]

DEFAULT_NAMESPACE = "modelmon"

# Label keys.
MODEL = "model"
VERSION = "version"
BASE_LABELS: tuple[str, ...] = (MODEL, VERSION)
ERROR_TYPE = "error_type"
STAGE = "stage"
REASON = "reason"
FEATURE = "feature"
OUTPUT = "output"
BIN = "bin"
METHOD = "method"
# Not "quantile": Prometheus reserves it for summaries (promtool warns on gauges).
QUANTILE = "q"
# Not "le": Prometheus reserves it for histogram buckets.
UPPER_EDGE = "upper_edge"
ACTUAL = "actual"
PREDICTED = "predicted"
METRIC = "metric"
DETECTOR = "detector"
HTTP_METHOD = "method"
ROUTE = "route"
STATUS = "status"
SEGMENT = "segment"
RESULT = "result"
SIDE = "side"  # out of range: "low" (below the reference minimum) or "high"

# Bounded label values.
OTHER = "other"  # error types beyond the cap
POOLED = "__other__"  # categories / classes beyond the cap, unknown categories
SEGMENT_MISSING = "__missing__"  # the segment of a row whose segment value is missing
UNMATCHED_ROUTE = "<unmatched>"
MAX_ERROR_TYPES = 20

DRIFT_METHODS: tuple[str, ...] = ("psi", "js", "ks", "wasserstein", "chi2")


@dataclass(frozen=True)
class MetricSpec:
    """One metric: its name without namespace, type, labels (beyond model/version), help."""

    name: str
    kind: Kind
    labels: tuple[str, ...]
    help: str
    otel_name: str
    unit: str = ""

    def prometheus_name(self, namespace: str = DEFAULT_NAMESPACE) -> str:
        """The name as it appears in the exposition (counters end in ``_total``)."""
        base = f"{namespace}_{self.name}"
        return f"{base}_total" if self.kind == "counter" else base

    def family_name(self, namespace: str = DEFAULT_NAMESPACE) -> str:
        """The name given to prometheus-client's metric family (no ``_total``)."""
        return f"{namespace}_{self.name}"

    @property
    def all_labels(self) -> tuple[str, ...]:
        return BASE_LABELS + self.labels


def _m(
    name: str, kind: Kind, labels: tuple[str, ...], help: str, otel: str, unit: str = ""
) -> MetricSpec:
    spec = MetricSpec(name, kind, labels, help, otel, unit)
    CATALOGUE.append(spec)
    return spec


CATALOGUE: list[MetricSpec] = []

# --- Traffic and health (core) -------------------------------------------------------
REQUESTS = _m(
    "requests", "counter", (), "Calls of the monitored function.", "modelmon.requests", "{request}"
)
PREDICTIONS = _m(
    "predictions",
    "counter",
    (),
    "Rows predicted (a batch of N rows counts N).",
    "modelmon.predictions",
    "{prediction}",
)
REQUEST_ERRORS = _m(
    "request_errors",
    "counter",
    (ERROR_TYPE,),
    "Calls that raised, by exception class name (at most 20 values, then 'other').",
    "modelmon.request.errors",
    "{error}",
)
REQUESTS_ABORTED = _m(
    "requests_aborted",
    "counter",
    (REASON,),
    "Calls that raised for a reason that is not the model's: 'client_error' (the HTTP "
    "response was 4xx) or 'cancelled' (cancelled, interrupted, exiting). Not in "
    "request_errors_total.",
    "modelmon.requests.aborted",
    "{request}",
)
REQUEST_DURATION = _m(
    "request_duration_seconds",
    "histogram",
    (),
    "Execution time of the monitored function in seconds (awaited time for coroutines).",
    "modelmon.request.duration",
    "s",
)
IN_FLIGHT = _m(
    "requests_in_flight",
    "gauge",
    (),
    "Calls currently executing.",
    "modelmon.requests.in_flight",
    "{request}",
)
BATCH_SIZE = _m("batch_size", "histogram", (), "Rows per call.", "modelmon.batch.size", "{row}")
CONFIDENCE = _m(
    "prediction_confidence",
    "histogram",
    (),
    "Confidence of each prediction (max class probability), in [0, 1].",
    "modelmon.prediction.confidence",
    "1",
)
MODEL_INFO = _m(
    "model_info",
    "gauge",
    ("task", "sdk_version", "reference"),
    "Always 1; labels carry model metadata (task, sdk version, reference).",
    "modelmon.model.info",
    "{info}",
)
LAST_PREDICTION = _m(
    "last_prediction_timestamp_seconds",
    "gauge",
    (),
    "Unix time of the latest prediction.",
    "modelmon.last_prediction.timestamp",
    "s",
)
INTERNAL_ERRORS = _m(
    "internal_errors",
    "counter",
    (STAGE,),
    "Failures inside modelmon, by stage; they never reach the caller.",
    "modelmon.internal.errors",
    "{error}",
)
DROPPED = _m(
    "dropped_observations",
    "counter",
    (REASON,),
    "Observations modelmon could not record, by reason.",
    "modelmon.dropped_observations",
    "{observation}",
)

# --- Features and drift (reference profiles) ---------------------------------------
FEATURE_BIN = _m(
    "feature_bin",
    "counter",
    (FEATURE, BIN),
    "Observed values per reference bin (bins labelled by index).",
    "modelmon.feature.bin",
    "{value}",
)
FEATURE_REFERENCE_RATIO = _m(
    "feature_reference_ratio",
    "gauge",
    (FEATURE, BIN),
    "Share of the reference data in each bin.",
    "modelmon.feature.reference_ratio",
    "1",
)
FEATURE_BIN_EDGES = _m(
    "feature_bin_edges_info",
    "gauge",
    (FEATURE, BIN, UPPER_EDGE),
    "Opt-in: upper edge of each reference bin.",
    "modelmon.feature.bin_edges",
    "{info}",
)
FEATURE_MISSING = _m(
    "feature_missing",
    "counter",
    (FEATURE,),
    "Missing values (None, NaN).",
    "modelmon.feature.missing",
    "{value}",
)
FEATURE_INVALID = _m(
    "feature_invalid",
    "counter",
    (FEATURE,),
    "Values of the wrong type (e.g. a string in a numeric feature, +-inf).",
    "modelmon.feature.invalid",
    "{value}",
)
FEATURE_OBSERVATIONS = _m(
    "feature_observations",
    "counter",
    (FEATURE,),
    "Values seen for the feature (valid, missing and invalid).",
    "modelmon.feature.observations",
    "{value}",
)
FEATURE_DRIFT = _m(
    "feature_drift",
    "gauge",
    (FEATURE, METHOD),
    "Drift of the feature over the sliding window against the reference.",
    "modelmon.feature.drift",
    "{score}",
)
FEATURE_DRIFT_DETECTED = _m(
    "feature_drift_detected",
    "gauge",
    (FEATURE,),
    "1 when the window's distribution differs from the reference (two-sample test at "
    "alpha / features, and PSI >= the effect floor), else 0.",
    "modelmon.feature.drift.detected",
    "{state}",
)
FEATURE_DRIFT_PVALUE = _m(
    "feature_drift_pvalue",
    "gauge",
    (FEATURE, METHOD),
    "p-value of the window-vs-reference test (chi2: binned two-sample chi-square, "
    "ks: two-sample Kolmogorov-Smirnov), before the multiple-testing correction.",
    "modelmon.feature.drift.pvalue",
    "{probability}",
)
FEATURE_REFERENCE_ROWS = _m(
    "feature_reference_rows",
    "gauge",
    (FEATURE,),
    "Non-missing rows of the reference profile for the feature.",
    "modelmon.feature.reference_rows",
    "{row}",
)
FEATURE_REFERENCE_MISSING_RATIO = _m(
    "feature_reference_missing_ratio",
    "gauge",
    (FEATURE,),
    "Share of missing values of the feature in the reference data.",
    "modelmon.feature.reference_missing_ratio",
    "1",
)
FEATURE_MISSING_DRIFT_DETECTED = _m(
    "feature_missing_drift_detected",
    "gauge",
    (FEATURE,),
    "1 when the window's missing share differs from the reference's (two-proportion test "
    "at alpha / features, and an absolute change >= the floor), else 0.",
    "modelmon.feature.missing_drift.detected",
    "{state}",
)
FEATURE_MISSING_DRIFT_PVALUE = _m(
    "feature_missing_drift_pvalue",
    "gauge",
    (FEATURE,),
    "p-value of the window-vs-reference missing-share test, before the correction.",
    "modelmon.feature.missing_drift.pvalue",
    "{probability}",
)
FEATURE_QUANTILE = _m(
    "feature_quantile",
    "gauge",
    (FEATURE, QUANTILE),
    "Live quantiles of the feature over the sliding window.",
    "modelmon.feature.quantile",
)
FEATURES_NOT_EXPORTED = _m(
    "features_not_exported",
    "counter",
    (),
    "Values of features beyond max_features (counted, not exported per feature).",
    "modelmon.features.not_exported",
    "{value}",
)
PREDICTION_BIN = _m(
    "prediction_bin",
    "counter",
    (OUTPUT, BIN),
    "Predictions per reference bin.",
    "modelmon.prediction.bin",
    "{prediction}",
)
PREDICTION_REFERENCE_RATIO = _m(
    "prediction_reference_ratio",
    "gauge",
    (OUTPUT, BIN),
    "Share of the reference predictions in each bin.",
    "modelmon.prediction.reference_ratio",
    "1",
)
PREDICTION_DRIFT = _m(
    "prediction_drift",
    "gauge",
    (OUTPUT, METHOD),
    "Drift of the prediction output over the sliding window against the reference.",
    "modelmon.prediction.drift",
    "{score}",
)
PREDICTION_DRIFT_DETECTED = _m(
    "prediction_drift_detected",
    "gauge",
    (OUTPUT,),
    "1 when the window's output distribution differs from the reference (two-sample test "
    "at alpha / outputs, and PSI >= the effect floor), else 0.",
    "modelmon.prediction.drift.detected",
    "{state}",
)
PREDICTION_DRIFT_PVALUE = _m(
    "prediction_drift_pvalue",
    "gauge",
    (OUTPUT, METHOD),
    "p-value of the output's window-vs-reference test, before the correction.",
    "modelmon.prediction.drift.pvalue",
    "{probability}",
)
PREDICTION_REFERENCE_ROWS = _m(
    "prediction_reference_rows",
    "gauge",
    (OUTPUT,),
    "Non-missing rows of the reference profile for the output.",
    "modelmon.prediction.reference_rows",
    "{row}",
)
PREDICTION_QUANTILE = _m(
    "prediction_quantile",
    "gauge",
    (OUTPUT, QUANTILE),
    "Live quantiles of the prediction output over the sliding window.",
    "modelmon.prediction.quantile",
)

FEATURE_DISTRIBUTION = _m(
    "feature_distribution",
    "exponential_histogram",
    (FEATURE,),
    "Opt-in, OTLP only: all values of the feature as an exponential histogram.",
    "modelmon.feature.distribution",
)
PREDICTION_DISTRIBUTION = _m(
    "prediction_distribution",
    "exponential_histogram",
    (OUTPUT,),
    "Opt-in, OTLP only: all prediction values as an exponential histogram.",
    "modelmon.prediction.distribution",
)

# --- Outliers (reference profiles; see modelmon.outliers) -----------------------------
FEATURE_OUT_OF_RANGE = _m(
    "feature_out_of_range",
    "counter",
    (FEATURE, SIDE),
    "Values below the reference minimum (side='low') or above its maximum (side='high').",
    "modelmon.feature.out_of_range",
    "{value}",
)
FEATURE_OUTLIERS = _m(
    "feature_outliers",
    "counter",
    (FEATURE,),
    "Values beyond the reference fences: q0.001 - IQR/2 and q0.999 + IQR/2.",
    "modelmon.feature.outliers",
    "{value}",
)
FEATURE_REFERENCE_OUTLIER_RATIO = _m(
    "feature_reference_outlier_ratio",
    "gauge",
    (FEATURE,),
    "Share of the reference values beyond the fences: the expected outlier rate.",
    "modelmon.feature.reference_outlier_ratio",
    "1",
)
PREDICTION_OUTLIERS = _m(
    "prediction_outliers",
    "counter",
    (OUTPUT,),
    "Numeric output values beyond the reference fences.",
    "modelmon.prediction.outliers",
    "{prediction}",
)
PREDICTION_REFERENCE_OUTLIER_RATIO = _m(
    "prediction_reference_outlier_ratio",
    "gauge",
    (OUTPUT,),
    "Share of the reference output values beyond the fences: the expected outlier rate.",
    "modelmon.prediction.reference_outlier_ratio",
    "1",
)
OUTLIER_ROWS = _m(
    "outlier_rows",
    "counter",
    (METHOD,),
    "Rows jointly unlike the reference (mahalanobis: squared distance above the "
    "chi-square 0.999 quantile).",
    "modelmon.outlier_rows",
    "{row}",
)
OUTLIER_ROWS_CHECKED = _m(
    "outlier_rows_checked",
    "counter",
    (METHOD,),
    "Rows tested for joint outliers (rows with a missing or invalid value in a tested "
    "feature are not).",
    "modelmon.outlier_rows.checked",
    "{row}",
)
OUTLIER_ROWS_REFERENCE_RATIO = _m(
    "outlier_rows_reference_ratio",
    "gauge",
    (METHOD,),
    "Share of the reference rows that are joint outliers: the expected rate.",
    "modelmon.outlier_rows.reference_ratio",
    "1",
)
OUTLIER_ROWS_REFERENCE_ROWS = _m(
    "outlier_rows_reference_rows",
    "gauge",
    (METHOD,),
    "Complete reference rows the joint outlier test was fitted on.",
    "modelmon.outlier_rows.reference_rows",
    "{row}",
)

# --- Ground truth, performance, concept drift, staleness ----------------------------
OUTCOMES = _m(
    "outcomes",
    "counter",
    (ACTUAL, PREDICTED),
    "Labelled predictions by actual and predicted class (a confusion matrix).",
    "modelmon.aggregates.outcomes",
    "{outcome}",
)
OUTCOMES_UNMATCHED = _m(
    "outcomes_unmatched",
    "counter",
    (REASON,),
    "Outcomes that could not be joined to a prediction "
    "(expired, unknown, duplicate, invalid, invalid_id).",
    "modelmon.aggregates.outcomes.unmatched",
    "{outcome}",
)
REGRESSION_SQUARED_ERROR = _m(
    "regression_squared_error",
    "summary",
    (),
    "Squared error of labelled regression predictions (_sum and _count are counters).",
    "modelmon.regression.squared_error",
)
REGRESSION_ABSOLUTE_ERROR = _m(
    "regression_absolute_error",
    "summary",
    (),
    "Absolute error of labelled regression predictions (_sum and _count are counters).",
    "modelmon.regression.absolute_error",
)
REGRESSION_OUTCOMES = _m(
    "regression_outcomes",
    "counter",
    (),
    "Labelled regression predictions.",
    "modelmon.regression.outcomes",
    "{outcome}",
)
PERFORMANCE = _m(
    "performance",
    "gauge",
    (METRIC,),
    "Model performance over the sliding window of labelled predictions.",
    "modelmon.performance",
)
OUTCOME_DELAY = _m(
    "outcome_delay_seconds",
    "histogram",
    (),
    "Time from a prediction to its label, in seconds.",
    "modelmon.outcome.delay",
    "s",
)
CONCEPT_DRIFT_DETECTED = _m(
    "concept_drift_detected",
    "counter",
    (DETECTOR,),
    "Concept drift detections on the per-prediction error stream.",
    "modelmon.concept_drift.detected",
    "{detection}",
)
CONCEPT_DRIFT = _m(
    "concept_drift",
    "gauge",
    (DETECTOR,),
    "1 while the concept drift detector is in drift state, else 0.",
    "modelmon.concept_drift",
    "{state}",
)
MODEL_TRAINED = _m(
    "model_trained_timestamp_seconds",
    "gauge",
    (),
    "Unix time the model was trained.",
    "modelmon.model.trained.timestamp",
    "s",
)
REFERENCE_CREATED = _m(
    "reference_created_timestamp_seconds",
    "gauge",
    (),
    "Unix time the reference profile was created.",
    "modelmon.reference.created.timestamp",
    "s",
)
MODEL_LOADED = _m(
    "model_loaded_timestamp_seconds",
    "gauge",
    (),
    "Unix time the monitor (and so the model) was loaded in this process.",
    "modelmon.model.loaded.timestamp",
    "s",
)

HEARTBEAT = _m(
    "heartbeat_timestamp_seconds",
    "gauge",
    (),
    "Unix time modelmon last collected the monitor (every scrape and OTLP export).",
    "modelmon.heartbeat.timestamp",
    "s",
)

# --- Segments (``segment=``): per slice of traffic, values from config or reference -----
SEGMENT_REQUESTS = _m(
    "segment_requests",
    "counter",
    (SEGMENT,),
    "Calls per segment (a call counts in the segment of its first row).",
    "modelmon.segment.requests",
    "{request}",
)
SEGMENT_PREDICTIONS = _m(
    "segment_predictions",
    "counter",
    (SEGMENT,),
    "Rows predicted per segment.",
    "modelmon.segment.predictions",
    "{prediction}",
)
SEGMENT_CONFIDENCE = _m(
    "segment_prediction_confidence",
    "histogram",
    (SEGMENT,),
    "Confidence of each prediction (max class probability) per segment, in [0, 1].",
    "modelmon.segment.prediction.confidence",
    "1",
)
SEGMENT_FEATURE_DRIFT = _m(
    "segment_feature_drift",
    "gauge",
    (SEGMENT, FEATURE, METHOD),
    "Drift of the feature within the segment over the sliding window against the reference.",
    "modelmon.segment.feature.drift",
    "{score}",
)
SEGMENT_FEATURE_DRIFT_DETECTED = _m(
    "segment_feature_drift_detected",
    "gauge",
    (SEGMENT, FEATURE),
    "1 when the segment's window differs from the reference (two-sample test at alpha / "
    "(features x segments), and PSI >= the effect floor), else 0.",
    "modelmon.segment.feature.drift.detected",
    "{state}",
)
SEGMENT_PREDICTION_DRIFT = _m(
    "segment_prediction_drift",
    "gauge",
    (SEGMENT, OUTPUT, METHOD),
    "Drift of the prediction output within the segment over the sliding window.",
    "modelmon.segment.prediction.drift",
    "{score}",
)
SEGMENT_PREDICTION_DRIFT_DETECTED = _m(
    "segment_prediction_drift_detected",
    "gauge",
    (SEGMENT, OUTPUT),
    "1 when the segment's output distribution differs from the reference, else 0.",
    "modelmon.segment.prediction.drift.detected",
    "{state}",
)
SEGMENT_PREDICTION_QUANTILE = _m(
    "segment_prediction_quantile",
    "gauge",
    (SEGMENT, OUTPUT, QUANTILE),
    "Live quantiles of the prediction output within the segment over the sliding window.",
    "modelmon.segment.prediction.quantile",
)
SEGMENT_OUTCOMES = _m(
    "segment_outcomes",
    "counter",
    (SEGMENT, RESULT),
    "Labelled classification predictions per segment, result 'correct' or 'wrong' "
    "(the segment travels in the prediction id).",
    "modelmon.segment.outcomes",
    "{outcome}",
)
SEGMENT_SQUARED_ERROR = _m(
    "segment_regression_squared_error",
    "summary",
    (SEGMENT,),
    "Squared error of labelled regression predictions per segment.",
    "modelmon.segment.regression.squared_error",
)
SEGMENT_ABSOLUTE_ERROR = _m(
    "segment_regression_absolute_error",
    "summary",
    (SEGMENT,),
    "Absolute error of labelled regression predictions per segment.",
    "modelmon.segment.regression.absolute_error",
)

# Metrics without a unit: their values are in the units of the user's data (a feature,
# the prediction, the regression target), which modelmon does not know, or mix several
# (``performance`` holds accuracy and RMSE side by side, told apart by ``metric``).
DATA_UNIT_METRICS: frozenset[str] = frozenset(
    {
        "feature_quantile",
        "prediction_quantile",
        "feature_distribution",
        "prediction_distribution",
        "regression_squared_error",
        "regression_absolute_error",
        "performance",
        "segment_prediction_quantile",
        "segment_regression_squared_error",
        "segment_regression_absolute_error",
    }
)

# --- HTTP (integrations); these carry no model/version labels -----------------------
HTTP_REQUESTS = MetricSpec(
    "http_requests",
    "counter",
    (HTTP_METHOD, ROUTE, STATUS),
    "HTTP requests by method, route template and status.",
    "modelmon.http.requests",
    "{request}",
)
HTTP_DURATION = MetricSpec(
    "http_request_duration_seconds",
    "histogram",
    (HTTP_METHOD, ROUTE),
    "HTTP request duration in seconds, to the last byte of the response.",
    "modelmon.http.request.duration",
    "s",
)
HTTP_CATALOGUE: tuple[MetricSpec, ...] = (HTTP_REQUESTS, HTTP_DURATION)

# --- the process's monitors (Prometheus collector); no model/version labels ----------
MONITORS = MetricSpec(
    "monitors",
    "gauge",
    (),
    "Live monitors exported by this registry in this process (closed or no longer "
    "referenced ones are gone).",
    "modelmon.monitors",
)
PROCESS_CATALOGUE: tuple[MetricSpec, ...] = (MONITORS,)

# Default buckets.
DURATION_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
BATCH_SIZE_BUCKETS: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384)
CONFIDENCE_BUCKETS: tuple[float, ...] = (
    0.1,
    0.2,
    0.3,
    0.4,
    0.5,
    0.6,
    0.7,
    0.8,
    0.9,
    0.95,
    0.99,
    1.0,
)
OUTCOME_DELAY_BUCKETS: tuple[float, ...] = (
    1, 10, 60, 300, 900, 3600, 4 * 3600, 86400, 3 * 86400, 7 * 86400, 30 * 86400,
)  # fmt: skip


def by_name(name: str) -> MetricSpec:
    """Look a spec up by its short name (``"requests"``)."""
    found = _FOUND.get(name)  # a merge looks every live series up at every scrape
    if found is not None:
        return found
    for spec in (*CATALOGUE, *HTTP_CATALOGUE, *PROCESS_CATALOGUE):
        if spec.name == name:
            _FOUND[name] = spec  # the first match stays first: the catalogue only grows
            return spec
    raise KeyError(name)


_FOUND: dict[str, MetricSpec] = {}
