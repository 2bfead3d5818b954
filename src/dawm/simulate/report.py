"""The simulator's report: per-tissue statistics of every modality and DAWM separability (AUC).

Rows of ``simulation_report.tsv``:
- ``kind=tissue``: mean and SD per scanner, modality (T1w and FLAIR normalised to NAWM median,
  T1map in ms, MTR in pu) and tissue (CSF, GM, NAWM, lesion, DAWM), pooled over sessions;
- ``kind=auc``: voxel AUC of DAWM vs NAWM per modality and scanner (and ``all``), oriented so that
  0.5 is chance and 1 is perfect in the expected direction (T1w and MTR lower, FLAIR and T1 higher);
  voxel values are taken relative to their session's NAWM median, so ``all`` pools sessions of
  1.5 T and 3 T scanners fairly;
- ``kind=volume``: cohort mean and SD of lesion and DAWM volume (ml) per group.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

#: Direction in which DAWM departs from NAWM on each modality (+1: higher).
DAWM_DIRECTION = {"T1w": -1, "FLAIR": +1, "T1map": +1, "MTR": -1}


def _pooled(means: np.ndarray, sds: np.ndarray, ns: np.ndarray) -> tuple[float, float]:
    total = ns.sum()
    mean = float((means * ns).sum() / total)
    var = float(((sds**2 + (means - mean) ** 2) * ns).sum() / total)
    return mean, var**0.5


def simulation_report(summaries) -> pd.DataFrame:
    rows = []
    stats = pd.DataFrame([s for summ in summaries for s in summ.stats])
    if not stats.empty:
        stats = stats.dropna(subset=["mean"])
        for (scanner, modality, tissue), grp in stats.groupby(["scanner", "modality", "tissue"]):
            m, sd = _pooled(grp["mean"].to_numpy(float), grp["sd"].to_numpy(float), grp["n"].to_numpy(float))
            rows.append(
                {
                    "kind": "tissue",
                    "scanner": scanner,
                    "modality": modality,
                    "tissue": tissue,
                    "mean": m,
                    "sd": sd,
                    "n": int(grp["n"].sum()),
                }
            )
    pools: dict[tuple[str, str], dict[str, list]] = defaultdict(lambda: {"DAWM": [], "NAWM": []})
    for summ in summaries:
        for sam in summ.samples:
            for scanner in (sam["scanner"], "all"):
                for cls in ("DAWM", "NAWM"):
                    pools[(scanner, sam["modality"])][cls].extend(sam.get(cls, []))
    for (scanner, modality), pool in sorted(pools.items()):
        if pool["DAWM"] and pool["NAWM"]:
            y = np.r_[np.ones(len(pool["DAWM"])), np.zeros(len(pool["NAWM"]))]
            x = np.r_[pool["DAWM"], pool["NAWM"]] * DAWM_DIRECTION.get(modality, 1)
            rows.append(
                {
                    "kind": "auc",
                    "scanner": scanner,
                    "modality": modality,
                    "tissue": "DAWM_vs_NAWM",
                    "mean": float(roc_auc_score(y, x)),
                    "n": int(len(y)),
                }
            )
    vols = pd.DataFrame([s for summ in summaries for s in summ.sessions])
    if not vols.empty:
        for col in ("lesion_ml", "dawm_ml"):
            rows.append(
                {
                    "kind": "volume",
                    "scanner": "all",
                    "modality": "truth",
                    "tissue": col,
                    "mean": float(vols[col].mean()),
                    "sd": float(vols[col].std(ddof=0)),
                    "n": int(len(vols)),
                }
            )
    return pd.DataFrame(rows, columns=["kind", "scanner", "modality", "tissue", "mean", "sd", "n"])
