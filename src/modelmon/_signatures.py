"""The public types of ``@monitored``: what a monitored function is, and its options.

Only for type checkers and readers: nothing here runs on the hot path.
:class:`Monitored` keeps the wrapped function's parameters and return type (a
``ParamSpec``) and adds ``.monitor``, so ``predict.monitor.record_outcome(...)`` passes
``mypy --strict``. :class:`MonitorOptions` types every keyword option of
:class:`~modelmon.Monitor`, so a misspelt option is a type error, not a run-time one.

>>> import modelmon
>>> @modelmon.monitored(model="m", version="1", registry=False)
... def predict(rows: list[float]) -> list[float]:
...     return rows
>>> predict.monitor.model
'm'
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, Protocol, TypedDict, TypeVar, overload

if TYPE_CHECKING:
    from typing import Concatenate

    from .monitor import ConfidenceArg, Monitor, Task
    from .profile import ReferenceProfile

P = ParamSpec("P")
Q = ParamSpec("Q")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)
T = TypeVar("T")


class Monitored(Protocol[P, R_co]):
    """A monitored callable: called exactly like the wrapped function, plus ``.monitor``.

    ``Monitored[[pd.DataFrame], np.ndarray]`` is what ``@monitored`` makes of
    ``def predict(X: pd.DataFrame) -> np.ndarray``. On a method, reading it from an
    instance binds ``self`` as a function would. Type checkers see a staticmethod or
    classmethod under ``@monitored`` as a plain function (its first parameter would be
    bound): wrap those with ``Monitor.wrap`` outside the class body instead.
    """

    @property
    def monitor(self) -> Monitor:
        """The :class:`~modelmon.Monitor` recording this function's calls."""
        ...

    @property
    def __wrapped__(self) -> Callable[P, R_co]: ...

    @property
    def __name__(self) -> str: ...

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co: ...

    @overload
    def __get__(self, instance: None, owner: type[Any] | None = None) -> Monitored[P, R_co]: ...

    @overload
    def __get__(
        self: Monitored[Concatenate[T, Q], R_co], instance: T, owner: type[Any] | None = None
    ) -> Monitored[Q, R_co]: ...


class MonitorDecorator(Protocol):
    """What ``monitored(...)`` returns: a decorator keeping the function's type."""

    def __call__(self, fn: Callable[P, R]) -> Monitored[P, R]: ...


class MonitorExtraOptions(TypedDict, total=False):
    """The keyword options of :class:`~modelmon.Monitor` but ``reference`` (``monitored``'s own).

    See :class:`~modelmon.Monitor` for what each does.
    """

    feature_names: Sequence[str] | None
    features: Callable[..., Any] | None
    prediction: Callable[[Any], Any] | None
    confidence: ConfidenceArg
    task: Task | None
    registry: Any
    namespace: str
    strict: bool
    categorical: Iterable[str] | None
    classes: Sequence[Any] | None
    max_features: int
    duration_buckets: Sequence[float]
    buffer_size: int
    window_seconds: float
    min_samples: int
    warmup_size: int
    drift_quantiles: Sequence[float]
    export_bin_edges: bool
    trained_at: float | None
    outcome_store: str | None
    outcome_capacity: int
    outcome_ttl_seconds: float
    max_classes: int
    positive_class: Any
    concept_detector: str
    trace: Literal["attributes", "span"] | None
    id_key: str | bytes | None
    drift_alpha: float
    drift_psi_floor: float
    missing_drift_floor: float
    outcome_range: tuple[float, float] | None
    log_every_s: float | None
    mlflow_run_id: str | None
    distributions: bool | Sequence[str]
    segment: str | Callable[[Mapping[str, Any]], Any] | None
    segments: Sequence[Any] | None
    segment_top_k: int
    max_series: int
    outliers: bool


class MonitorOptions(MonitorExtraOptions, total=False):
    """Every keyword option of :class:`~modelmon.Monitor` (for :func:`~modelmon.instrument`)."""

    reference: ReferenceProfile | str | Any
