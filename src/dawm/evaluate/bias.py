"""Per-factor bias analysis of per-session accuracy (pure functions on DataFrames, no I/O).

* :func:`compare_groups` - does a metric differ between the levels of a factor (scanner, field
  strength, FLAIR type, ...)? Per-level summary + Mann-Whitney U (2 levels) / Kruskal-Wallis (>2).
* :func:`quality_association` - is a metric associated with image quality metrics? Spearman
  correlation plus a linear mixed model with a subject random intercept (OLS with
  participant-clustered standard errors as the fallback).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
from scipy import stats
from statsmodels.tools.sm_exceptions import ConvergenceWarning

_CATEGORICAL = re.compile(r"^\s*C\(\s*([^,)\s]+)\s*(?:,[^)]*)?\)\s*$")


def _summary(x: np.ndarray) -> dict[str, float]:
    """n, mean, median, sd and the t-based 95% CI of the mean of finite values ``x``."""
    n = len(x)
    mean = float(np.mean(x)) if n else np.nan
    sd = float(np.std(x, ddof=1)) if n > 1 else np.nan
    half = float(stats.t.ppf(0.975, n - 1) * sd / np.sqrt(n)) if n > 1 else np.nan
    return {"n": n, "mean": mean, "median": float(np.median(x)) if n else np.nan, "sd": sd, "ci_low": mean - half, "ci_high": mean + half}


def compare_groups(df: pd.DataFrame, value: str, by: str) -> dict:
    """Compare ``value`` across the levels of ``by``.

    Returns ``{"table", "test", "statistic", "p"}``: ``table`` has one row per level of ``by``
    (rows with a missing level are ignored) with ``n`` finite values, mean, median, sd, the 95% CI
    of the mean (t distribution) and ``tested``. Levels with < 2 finite values are reported but
    left out of the test: Mann-Whitney U (two-sided) for 2 testable levels, Kruskal-Wallis for more.
    With < 2 testable levels (or no variation at all) ``p`` and ``statistic`` are NaN and ``test``
    reads ``"not testable (<reason>)"``.
    """
    values = pd.to_numeric(df[value], errors="coerce")
    rows, samples = [], []
    for level, vals in values.groupby(df[by], sort=True, observed=True, dropna=True):
        x = vals.to_numpy(float)
        x = x[np.isfinite(x)]
        rows.append({by: level, **_summary(x), "tested": len(x) >= 2})
        if len(x) >= 2:
            samples.append(x)
    columns = [by, "n", "mean", "median", "sd", "ci_low", "ci_high", "tested"]
    table = pd.DataFrame(rows, columns=columns)
    if len(samples) < 2:
        reason = f"{len(samples)} level(s) with >= 2 values"
        return {"table": table, "test": f"not testable ({reason})", "statistic": np.nan, "p": np.nan}
    if np.ptp(np.concatenate(samples)) == 0:
        return {"table": table, "test": "not testable (all values identical)", "statistic": np.nan, "p": np.nan}
    if len(samples) == 2:
        res = stats.mannwhitneyu(samples[0], samples[1], alternative="two-sided")
        name = "Mann-Whitney U"
    else:
        res = stats.kruskal(*samples)
        name = "Kruskal-Wallis H"
    return {"table": table, "test": name, "statistic": float(res.statistic), "p": float(res.pvalue)}


def _term_column(term: str) -> tuple[str, bool]:
    """Column name of a covariate term and whether it is categorical (``C(x)`` or non-numeric)."""
    m = _CATEGORICAL.match(term)
    return (m.group(1), True) if m else (term.strip(), False)


def _fit_mixed(data: pd.DataFrame, formula: str) -> tuple[float, float, float, bool]:
    """coef, SE, p of ``zq`` and convergence of a random-intercept model (raises on failure)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("ignore")
        warnings.simplefilter("always", ConvergenceWarning)  # recorded, never shown
        res = smf.mixedlm(formula, data, groups=data["grp"]).fit(reml=True)
    # A random-intercept variance on the boundary (zero) is a valid optimum, not a failure.
    converged = bool(getattr(res, "converged", True)) and not any(
        issubclass(w.category, ConvergenceWarning) and "boundary" not in str(w.message) for w in caught
    )
    coef, se, p = float(res.fe_params["zq"]), float(res.bse_fe["zq"]), float(res.pvalues["zq"])
    if not all(np.isfinite([coef, se, p])):
        raise np.linalg.LinAlgError("non-finite mixed-model estimate")
    return coef, se, p, converged


def quality_association(
    df: pd.DataFrame,
    value: str,
    quality_cols: Sequence[str],
    group: str = "participant_id",
    covariates: Sequence[str] = ("scanner",),
) -> pd.DataFrame:
    """Association of ``value`` with each quality metric in ``quality_cols``.

    Per metric (complete cases of value, metric, group and covariates): Spearman rho/p, and the
    linear mixed model ``value ~ z(metric) + covariates + (1 | group)`` (REML). ``coef``/``se``/``p``
    are per one standard deviation of the metric. Covariates are column names (non-numeric ones
    enter as ``C(col)``) or ``C(col)`` terms; covariates with a single level are skipped. When the
    mixed model fails or there are < 3 groups the model is OLS with group-clustered standard
    errors (``model="ols_cluster"``; plain ``"ols"`` with a single group). ConvergenceWarnings are
    silenced and reported in ``converged``. A constant metric or < 3 rows gives NaN estimates and
    ``model="not estimable"``.
    """
    cov_terms = [_term_column(c) for c in covariates]
    rows = []
    for q in quality_cols:
        cols = [value, q, group, *[c for c, _ in cov_terms]]
        sub = df[cols].copy()
        for c in (value, q):
            sub[c] = pd.to_numeric(sub[c], errors="coerce")
        sub = sub.replace([np.inf, -np.inf], np.nan).dropna()
        data = pd.DataFrame({"y": sub[value].to_numpy(float), "grp": sub[group].astype(str).to_numpy()})
        sd = float(sub[q].std(ddof=1)) if len(sub) > 1 else np.nan
        data["zq"] = (sub[q].to_numpy(float) - sub[q].mean()) / sd if sd > 0 else np.nan
        terms, used = ["zq"], []
        for i, (col, categorical) in enumerate(cov_terms):
            if sub[col].nunique() < 2:
                continue
            numeric = pd.api.types.is_numeric_dtype(sub[col]) and not categorical
            data[f"c{i}"] = sub[col].to_numpy(float) if numeric else sub[col].astype(str).to_numpy()
            terms.append(f"c{i}" if numeric else f"C(c{i})")
            used.append(col)
        n, n_groups = len(data), int(data["grp"].nunique())
        row = {
            "quality": q,
            "n": n,
            "n_groups": n_groups,
            "spearman_rho": np.nan,
            "spearman_p": np.nan,
            "model": "not estimable",
            "coef": np.nan,
            "se": np.nan,
            "p": np.nan,
            "converged": False,
            "covariates": ",".join(used),
        }
        if n < 3 or not sd > 0:
            rows.append(row)
            continue
        if data["y"].nunique() > 1:
            rho, p_rho = stats.spearmanr(sub[q], data["y"])
            row.update(spearman_rho=float(rho), spearman_p=float(p_rho))
        formula = "y ~ " + " + ".join(terms)
        fitted = False
        if n_groups >= 3 and n > n_groups:
            try:
                coef, se, p, conv = _fit_mixed(data, formula)
                row.update(model="mixedlm", coef=coef, se=se, p=p, converged=conv)
                fitted = True
            except (ValueError, np.linalg.LinAlgError):
                fitted = False
        if not fitted:
            try:
                ols = smf.ols(formula, data)
                res = ols.fit(cov_type="cluster", cov_kwds={"groups": pd.factorize(data["grp"])[0]}) if n_groups >= 2 else ols.fit()
                row.update(
                    model="ols_cluster" if n_groups >= 2 else "ols",
                    coef=float(res.params["zq"]),
                    se=float(res.bse["zq"]),
                    p=float(res.pvalues["zq"]),
                    converged=True,
                )
            except (ValueError, np.linalg.LinAlgError):
                pass
        rows.append(row)
    return pd.DataFrame(
        rows, columns=["quality", "n", "n_groups", "spearman_rho", "spearman_p", "model", "coef", "se", "p", "converged", "covariates"]
    )
