"""Clinical association of DAWM volume (pure functions on DataFrames, no I/O)."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf

from dawm.evaluate.bias import _term_column, compare_groups

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _q(col: str) -> str:
    """A column name usable in a patsy formula."""
    return col if _IDENT.match(col) else f'Q("{col}")'


def _term(term: str) -> str:
    col, categorical = _term_column(term)
    return term.strip() if categorical and _IDENT.match(col) else (f"C({_q(col)})" if categorical else _q(col))


def clinical_association(
    df: pd.DataFrame,
    outcome: str = "edss",
    exposure: str = "dawm_ml",
    covariates: Sequence[str] = ("age", "C(sex)", "lesion_ml", "disease_duration"),
) -> dict:
    """OLS of ``outcome ~ exposure + covariates`` on the complete cases.

    Covariates are column names or ``C(col)`` terms. Covariates whose column is missing or all-NaN
    are dropped first; then, on the complete cases, covariates without variation (one level) are
    dropped (repeated until stable, since dropping one can bring rows back). Returns ``coef``,
    ``se``, ``ci_low``, ``ci_high`` (95%), ``p`` of the exposure, ``beta_std`` (coef * sd(exposure)
    / sd(outcome) on the analysed rows), ``n``, ``r2``, ``formula``, ``params`` (DataFrame indexed
    by term: coef, se, t, p, ci_low, ci_high), ``covariates_used`` and ``dropped_covariates``
    (term -> reason). Raises ``ValueError`` when the exposure or outcome is constant or too few
    complete rows remain to fit the model.
    """
    dropped: dict[str, str] = {}
    terms: list[tuple[str, str]] = []  # (term, column)
    for term in covariates:
        col, _ = _term_column(term)
        if col not in df.columns:
            dropped[term] = "missing column"
        elif df[col].isna().all():
            dropped[term] = "all NaN"
        else:
            terms.append((term, col))
    data = df.copy()
    for c in (outcome, exposure):
        data[c] = pd.to_numeric(data[c], errors="coerce")
    while True:
        used = [outcome, exposure, *[c for _, c in terms]]
        sub = data[used].replace([np.inf, -np.inf], np.nan).dropna()
        constant = [(t, c) for t, c in terms if sub[c].nunique() < 2]
        if not constant:
            break
        for t, _ in constant:
            dropped[t] = "constant"
        terms = [tc for tc in terms if tc not in constant]
    formula = f"{_q(outcome)} ~ " + " + ".join([_q(exposure), *[_term(t) for t, _ in terms]])
    if sub[exposure].nunique() < 2 or sub[outcome].nunique() < 2:
        raise ValueError(f"{exposure!r} or {outcome!r} has no variation in the {len(sub)} complete rows")
    res = smf.ols(formula, sub).fit()
    if res.df_resid < 1:
        raise ValueError(f"too few complete rows ({len(sub)}) for {formula!r}")
    ci = res.conf_int()
    params = pd.DataFrame({"coef": res.params, "se": res.bse, "t": res.tvalues, "p": res.pvalues, "ci_low": ci[0], "ci_high": ci[1]})
    key = _q(exposure)
    return {
        "coef": float(res.params[key]),
        "se": float(res.bse[key]),
        "ci_low": float(ci.loc[key, 0]),
        "ci_high": float(ci.loc[key, 1]),
        "p": float(res.pvalues[key]),
        "beta_std": float(res.params[key] * sub[exposure].std(ddof=1) / sub[outcome].std(ddof=1)),
        "n": int(res.nobs),
        "r2": float(res.rsquared),
        "formula": formula,
        "params": params,
        "covariates_used": [t for t, _ in terms],
        "dropped_covariates": dropped,
    }


def group_difference(df: pd.DataFrame, value: str = "dawm_ml", group: str = "group", order: Sequence[str] | None = None) -> dict:
    """Difference of ``value`` between clinical groups (e.g. HC/RRMS/SPMS/PPMS).

    :func:`compare_groups` on ``group``: Kruskal-Wallis for > 2 groups with >= 2 values
    (Mann-Whitney U for exactly 2). ``order`` optionally orders the table's rows (unlisted levels
    follow, in sorted order).
    """
    out = compare_groups(df, value, group)
    if order is not None:
        table = out["table"]
        rank = {g: i for i, g in enumerate(order)}
        keys = table[group].map(lambda g: (rank.get(g, len(rank)), str(g)))
        out["table"] = table.iloc[sorted(range(len(table)), key=lambda i: keys.iloc[i])].reset_index(drop=True)
    return out
