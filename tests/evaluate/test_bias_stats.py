"""Bias statistics (group comparisons, quality association) and clinical association on synthetic data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dawm.evaluate.association import clinical_association, group_difference
from dawm.evaluate.bias import compare_groups, quality_association


def _two_scanners(shift: float, seed: int = 0, n: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "scanner": ["A"] * n + ["B"] * n,
            "dice": np.r_[rng.normal(0.70, 0.05, n), rng.normal(0.70 - shift, 0.05, n)],
        }
    )


def test_compare_groups_detects_shift_and_not_equal():
    shifted = compare_groups(_two_scanners(0.08), "dice", "scanner")
    assert shifted["test"] == "Mann-Whitney U" and shifted["p"] < 0.01
    table = shifted["table"]
    assert list(table["scanner"]) == ["A", "B"] and list(table["n"]) == [40, 40]
    assert (table["ci_low"] < table["mean"]).all() and (table["mean"] < table["ci_high"]).all()
    equal = compare_groups(_two_scanners(0.0), "dice", "scanner")
    assert equal["p"] > 0.05


def test_compare_groups_kruskal_nan_and_small_levels():
    rng = np.random.default_rng(1)
    df = pd.DataFrame(
        {
            "field_strength": np.repeat([1.5, 3.0, 7.0], 30),
            "dice": np.r_[rng.normal(0.6, 0.05, 30), rng.normal(0.7, 0.05, 30), rng.normal(0.65, 0.05, 30)],
        }
    )
    df.loc[[0, 5], "dice"] = np.nan
    extra = pd.DataFrame({"field_strength": [0.5, np.nan], "dice": [0.9, 0.1]})
    out = compare_groups(pd.concat([df, extra], ignore_index=True), "dice", "field_strength")
    assert out["test"] == "Kruskal-Wallis H" and out["p"] < 0.01
    table = out["table"].set_index("field_strength")
    assert table.loc[1.5, "n"] == 28 and table.loc[0.5, "n"] == 1 and not table.loc[0.5, "tested"]
    assert np.isnan(table.loc[0.5, "sd"]) and len(table) == 4  # the NaN level is ignored

    one = compare_groups(pd.DataFrame({"flair_type": ["2D", "2D", "3D"], "dice": [0.5, 0.6, 0.7]}), "dice", "flair_type")
    assert one["test"].startswith("not testable") and np.isnan(one["p"])


def _quality_cohort(seed: int = 0, n_sub: int = 24, n_ses: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    pid = np.repeat([f"sub-{i:02d}" for i in range(n_sub)], n_ses)
    scanner = rng.choice(["A", "B", "C"], size=pid.size)
    snr = rng.normal(20, 5, pid.size)
    cjv = rng.normal(0.4, 0.1, pid.size)
    intercept = np.repeat(rng.normal(0, 0.08, n_sub), n_ses)  # subject random intercept
    dice = 0.65 + intercept + 0.04 * (snr - 20) / 5 + np.where(scanner == "B", -0.05, 0.0) + rng.normal(0, 0.02, pid.size)
    return pd.DataFrame(
        {"participant_id": pid, "scanner": scanner, "dice": dice, "iqm_snr_FLAIR": snr, "iqm_cjv_T1w": cjv, "iqm_const": 1.0}
    )


def test_quality_association_mixed_model_recovers_sign():
    df = _quality_cohort()
    df.loc[3, "iqm_snr_FLAIR"] = np.nan
    out = quality_association(df, "dice", ["iqm_snr_FLAIR", "iqm_cjv_T1w", "iqm_const"]).set_index("quality")
    snr = out.loc["iqm_snr_FLAIR"]
    assert snr["model"] == "mixedlm" and snr["n"] == len(df) - 1 and snr["converged"]
    assert snr["coef"] > 0 and snr["p"] < 1e-3 and abs(snr["coef"] - 0.04) < 0.01  # per SD of SNR
    assert snr["spearman_rho"] > 0 and snr["covariates"] == "scanner"
    assert out.loc["iqm_cjv_T1w", "p"] > 0.01
    assert out.loc["iqm_const", "model"] == "not estimable" and np.isnan(out.loc["iqm_const", "coef"])


def test_quality_association_falls_back_to_clustered_ols():
    df = _quality_cohort(seed=2)
    df = df[df["participant_id"].isin(["sub-00", "sub-01"])]
    out = quality_association(df, "dice", ["iqm_snr_FLAIR"], covariates=())
    assert out.loc[0, "model"] == "ols_cluster" and np.isfinite(out.loc[0, "se"]) and out.loc[0, "n_groups"] == 2


def _clinical(seed: int, dawm_effect: float, n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.uniform(20, 60, n)
    lesion = rng.lognormal(1.5, 0.6, n)
    dawm = rng.lognormal(2.2, 0.6, n) + 0.3 * lesion
    edss = dawm_effect * dawm + 0.1 * lesion + 0.03 * age + rng.normal(0, 0.5, n)
    return pd.DataFrame(
        {
            "edss": edss,
            "dawm_ml": dawm,
            "lesion_ml": lesion,
            "age": age,
            "sex": rng.choice(["F", "M"], n),
            "disease_duration": rng.uniform(1, 20, n),
        }
    )


def test_clinical_association_recovers_effect():
    df = _clinical(0, 0.05)
    df.loc[:4, "age"] = np.nan
    out = clinical_association(df)
    assert out["ci_low"] < 0.05 < out["ci_high"] and out["p"] < 0.05 and out["n"] == 195
    assert out["formula"] == "edss ~ dawm_ml + age + C(sex) + lesion_ml + disease_duration"
    assert 0 < out["beta_std"] < 1 and 0 < out["r2"] < 1 and not out["dropped_covariates"]
    assert {"coef", "se", "p", "ci_low", "ci_high"} <= set(out["params"].columns)
    assert out["params"].loc["lesion_ml", "ci_low"] < 0.1 < out["params"].loc["lesion_ml", "ci_high"]


def test_clinical_association_null_and_dropped_covariates():
    df = _clinical(3, 0.0)
    df["disease_duration"] = np.nan
    df["sex"] = "F"
    out = clinical_association(df)
    assert out["p"] > 0.05
    assert out["dropped_covariates"] == {"disease_duration": "all NaN", "C(sex)": "constant"}
    assert out["formula"] == "edss ~ dawm_ml + age + lesion_ml" and out["n"] == len(df)
    with pytest.raises(ValueError):
        clinical_association(df.assign(dawm_ml=1.0))


def test_group_difference_kruskal():
    rng = np.random.default_rng(4)
    groups = ["HC", "RRMS", "SPMS", "PPMS"]
    df = pd.DataFrame(
        {
            "group": np.repeat(groups, 20),
            "dawm_ml": np.r_[rng.normal(0.5, 0.3, 20), rng.normal(8, 3, 20), rng.normal(15, 4, 20), rng.normal(12, 4, 20)],
        }
    )
    out = group_difference(df, order=groups)
    assert out["test"] == "Kruskal-Wallis H" and out["p"] < 0.01
    assert list(out["table"]["group"]) == groups
