"""Unit detection and conversion for quantitative maps (T1 in ms, MTR in percent units).

Real data arrive with T1 maps in seconds (the BIDS raw convention) or milliseconds, and MTR maps
in percent or as a fraction. The declared unit (a sidecar's ``Units``) wins; without one, the unit
is inferred from the values inside the brain, and the decision is returned so it can be logged.
"""

from __future__ import annotations

import numpy as np

from dawm.errors import InputError

_T1_UNITS = {"s": 1000.0, "sec": 1000.0, "seconds": 1000.0, "ms": 1.0, "msec": 1.0, "milliseconds": 1.0}
_MTR_UNITS = {"percent": 1.0, "pu": 1.0, "%": 1.0, "fraction": 100.0, "ratio": 100.0, "arbitrary": None}


def _robust_median(data: np.ndarray, mask: np.ndarray | None) -> float:
    values = data[mask] if mask is not None else data
    values = values[np.isfinite(values) & (values > 0)]
    if values.size == 0:
        raise InputError("quantitative map has no positive values inside the mask")
    return float(np.median(values))


def t1_to_ms(data: np.ndarray, *, declared: str | None = None, mask: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """Return ``(t1_ms, unit_found)``: a T1 map converted to milliseconds.

    Without a declared unit, a brain median below 20 means seconds (tissue T1 is 0.3-5 s, i.e.
    300-5000 ms), above means milliseconds.
    """
    if declared is not None and declared.strip().lower() in _T1_UNITS:
        unit = "ms" if _T1_UNITS[declared.strip().lower()] == 1.0 else "s"
    else:
        unit = "s" if _robust_median(data, mask) < 20.0 else "ms"
    factor = 1000.0 if unit == "s" else 1.0
    return (np.asarray(data, dtype=np.float32) * factor), unit


def mtr_to_percent(data: np.ndarray, *, declared: str | None = None, mask: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """Return ``(mtr_pu, unit_found)``: an MTR map in percent units.

    Without a declared unit, a brain 95th percentile at or below 1.0 means a fraction.
    """
    key = declared.strip().lower() if declared else None
    if key in _MTR_UNITS and _MTR_UNITS[key] is not None:
        unit = "percent" if _MTR_UNITS[key] == 1.0 else "fraction"
    else:
        values = data[mask] if mask is not None else data
        values = values[np.isfinite(values) & (values > 0)]
        if values.size == 0:
            raise InputError("MTR map has no positive values inside the mask")
        unit = "fraction" if float(np.percentile(values, 95)) <= 1.0 else "percent"
    factor = 100.0 if unit == "fraction" else 1.0
    return (np.asarray(data, dtype=np.float32) * factor), unit
