"""The index mapping of modelmon's log sketches: OpenTelemetry's base-2 exponential mapping.

At scale ``s`` the base is ``gamma = 2 ** (2 ** -s)``; a sketch key ``k`` holds the
magnitudes ``gamma ** (k - 1) < |x| <= gamma ** k``, which is exactly bucket index
``k - 1`` of an OpenTelemetry exponential histogram (and of a Prometheus native
histogram) at the same scale. So a sketch's buckets *are* exponential-histogram buckets:
they export, merge and re-aggregate without conversion.

Keys are ``ceil(log2(|x|) * 2 ** s)``: ``log2`` is exact at powers of two and the
product by ``2 ** s`` is exact, so a power of two lands in the bucket it bounds, as
the OTel specification requires.

A bucket is represented by ``2 * gamma ** k / (1 + gamma)``, within a relative error
``(gamma - 1) / (gamma + 1)`` of every value in it. :func:`scale_for` picks the
coarsest scale meeting a requested relative accuracy: 1% gives scale 6 (0.54%).

>>> scale_for(0.01), round(accuracy(6), 5)
(6, 0.00542)
>>> import numpy as np
>>> keys(np.array([1.0, 2.0, 2.01]), 6).tolist()  # (1, 2] is key 64, OTel index 63
[0.0, 64.0, 65.0]
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

MIN_SCALE, MAX_SCALE = -10, 20  # OpenTelemetry's range of exponential-histogram scales
# Keys a store may span before its lowest buckets collapse: at scale 6 a dynamic range of
# 2**64 (the 2048 keys of the former 1%-gamma mapping spanned about 2**59).
DEFAULT_MAX_BUCKETS = 4096
_LARGEST = float(np.finfo(np.float64).max)


def gamma(scale: int) -> float:
    """The base ``2 ** (2 ** -scale)``: the ratio between successive bucket bounds."""
    return float(2.0 ** (2.0**-scale))


def accuracy(scale: int) -> float:
    """The relative accuracy of bucket representatives at ``scale``."""
    g = gamma(scale)
    return (g - 1.0) / (g + 1.0)


def scale_for(relative_accuracy: float) -> int:
    """The coarsest scale whose relative accuracy is at least as good as requested."""
    if not 0.0 < relative_accuracy < 1.0:
        raise ValueError(f"relative_accuracy must be in (0, 1), got {relative_accuracy!r}")
    # accuracy(s) <= a  <=>  gamma <= (1 + a) / (1 - a)  <=>  2**-s <= log2((1 + a) / (1 - a))
    wanted = math.log2((1.0 + relative_accuracy) / (1.0 - relative_accuracy))
    scale = max(MIN_SCALE, math.ceil(-math.log2(wanted)))
    while scale < MAX_SCALE and accuracy(scale) > relative_accuracy:
        scale += 1  # float rounding at an exact boundary
    if accuracy(scale) > relative_accuracy:
        raise ValueError(f"relative_accuracy {relative_accuracy!r} needs a scale above {MAX_SCALE}")
    return scale


def multiplier(scale: int) -> float:
    """``2 ** scale`` (``1 / log2(gamma)``): key = ``ceil(log2|x| * multiplier)``."""
    return float(2.0**scale)


def keys(values: npt.ArrayLike, scale: int) -> FloatArray:
    """Key of each value: ``ceil(log2|x| * 2 ** scale)`` (``-inf`` for 0, NaN for NaN)."""
    v = np.abs(np.asarray(values, dtype=np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        np.log2(v, out=v)
    v *= multiplier(scale)
    return np.asarray(np.ceil(v, out=v), dtype=np.float64)


def values(k: npt.ArrayLike, scale: int) -> FloatArray:
    """The representative value ``2 * gamma ** k / (1 + gamma)`` of each key (finite).

    Computed as ``2 ** (k / 2 ** scale - 1) * (4 / (1 + gamma))`` so the bucket of the
    largest doubles does not overflow on the way. A representative past the largest
    double (that bucket's at coarse scales, and the spare keys a layout spans beyond it)
    is the largest double: no value any such bucket holds is larger.
    """
    kk = np.asarray(k, dtype=np.float64)
    with np.errstate(over="ignore"):  # keys at or past the largest double's: capped below
        out = np.exp2(kk / multiplier(scale) - 1.0)
        out *= 4.0 / (1.0 + gamma(scale))
    np.minimum(out, _LARGEST, out=out)  # its values are all <= the largest double
    return np.asarray(out, dtype=np.float64)


def lower_bound(k: npt.ArrayLike, scale: int) -> FloatArray:
    """The exclusive lower bound ``gamma ** (k - 1)`` of each key's bucket."""
    kk = np.asarray(k, dtype=np.float64)
    return np.asarray(np.exp2((kk - 1.0) / multiplier(scale)), dtype=np.float64)


def otel_index(k: int) -> int:
    """The OpenTelemetry exponential-histogram bucket index of sketch key ``k``."""
    return k - 1


def check_sketch_args(relative_accuracy: float, max_buckets: int) -> None:
    """Raise ``ValueError`` unless ``0 < relative_accuracy < 1`` and ``max_buckets >= 2``."""
    if not 0.0 < relative_accuracy < 1.0:
        raise ValueError(f"relative_accuracy must be in (0, 1), got {relative_accuracy!r}")
    if max_buckets < 2:
        raise ValueError(f"max_buckets must be >= 2, got {max_buckets!r}")
