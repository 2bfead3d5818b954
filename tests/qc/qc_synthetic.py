"""A tiny synthetic predicted session, written with the BIDS name helpers: a raw dataset, its
preprocess derivative (images, masks, tissues, log with warnings, IQMs) and ``dawm predict`` outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from dawm.bids.derivatives import init_derivative, write_json, write_tsv
from dawm.bids.entities import BidsName
from dawm.image.io import save_volume

SHAPE = (30, 36, 28)
AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])
AFFINE[:3, 3] = [-30.0, -40.0, -26.0]
WARNINGS = [
    "sub-qc01_ses-01_FLAIR.nii.gz: partial field of view, 88 % of the expected brain inside it",
    "MNI registration fallback used: affine only (after demons on T1w)",
]


def _base(subject: str, session: str | None) -> BidsName:
    return BidsName(entities={"sub": subject, **({"ses": session} if session else {})}, suffix="")


def raw_session(bids: Path, subject: str, session: str | None = "01") -> None:
    """Raw T1w/FLAIR of one session (tiny noise images: only their names matter to discovery)."""
    if not (bids / "dataset_description.json").exists():
        bids.mkdir(parents=True, exist_ok=True)
        write_json(bids / "dataset_description.json", {"Name": "qc test", "BIDSVersion": "1.9.0"})
    base = _base(subject, session)
    for role in ("T1w", "FLAIR"):
        save_volume(np.random.default_rng(0).random(SHAPE).astype(np.float32), AFFINE, bids / base.with_(suffix=role).relpath)


def predicted_session(
    bids: Path,
    pred: Path,
    subject: str = "qc01",
    session: str | None = "01",
    *,
    seed: int = 0,
    iqm: bool = True,
    warnings: list[str] = WARNINGS,
) -> Path:
    """Preprocess derivative (``bids/derivatives/dawm-preprocess``) and predictions (``pred``) of one
    session; returns the prediction folder."""
    rng = np.random.default_rng(seed)
    raw_session(bids, subject, session)
    base = _base(subject, session)
    idx = np.indices(SHAPE).astype(float)
    c = (np.asarray(SHAPE, float)[:, None, None, None] - 1) / 2
    r = np.sqrt((((idx - c) / (c * 0.85)) ** 2).sum(0))
    brain = r < 1.0
    tissues = np.where(r < 0.2, 1, np.where(r < 0.7, 3, np.where(r < 1.0, 2, 0))).astype(np.uint8)  # CSF core, WM, GM rim
    lesion = ((idx[0] - 10) ** 2 + (idx[1] - 18) ** 2 + (idx[2] - 14) ** 2) < 5
    dawm = ((idx[0] - 19) ** 2 + (idx[1] - 20) ** 2 + (idx[2] - 15) ** 2) < 7
    pred_labels = np.where(lesion, 1, np.where(dawm, 2, 0)).astype(np.uint8)
    t1 = np.choose(tissues, [10.0, 30.0, 60.0, 90.0]) + rng.normal(0, 3, SHAPE)
    flair = np.choose(tissues, [10.0, 20.0, 70.0, 55.0]) + 40 * lesion + 12 * dawm + rng.normal(0, 3, SHAPE)
    fov = np.ones(SHAPE, np.uint8)
    fov[:, :, -5:] = 0  # a field of view that cuts the top of the brain

    pp = bids / "derivatives" / "dawm-preprocess"
    init_derivative(pp, name="dawm preprocess", description="test", source="../..")
    d = pp / base.subject_dir()

    def pname(**kw) -> Path:
        return d / base.with_(**kw).filename

    for role, image in (("T1w", t1), ("FLAIR", flair)):
        save_volume(np.clip(image, 0, None).astype(np.float32), AFFINE, pname(space="session", desc="preproc", suffix=role))
    save_volume(brain.astype(np.uint8), AFFINE, pname(space="session", desc="brain", suffix="mask"), dtype=np.uint8)
    save_volume(fov, AFFINE, pname(space="session", desc="fov", suffix="mask"), dtype=np.uint8)
    save_volume(tissues, AFFINE, pname(space="session", suffix="dseg"), dtype=np.uint8)
    if iqm:
        write_tsv(
            pname(desc="iqm", suffix="metrics", extension=".tsv"),
            pd.DataFrame(
                [
                    {
                        "participant_id": f"sub-{subject}",
                        "session_id": f"ses-{session}",
                        "role": "T1w",
                        "snr_total": 7.0,
                        "cnr": 0.8,
                        "cjv": 1.5,
                        "efc": 0.48,
                        "fber": 2.5e4,
                        "fwhm_mm": 4.0,
                    },
                    {
                        "participant_id": f"sub-{subject}",
                        "session_id": f"ses-{session}",
                        "role": "FLAIR",
                        "snr_total": 2.1,
                        "cnr": 0.7,
                        "cjv": 1.7,
                        "efc": 0.49,
                        "fber": 2.5e3,
                        "fwhm_mm": 2.8,
                    },
                ]
            ),
        )
    write_json(
        pname(desc="preproc", suffix="log", extension=".json"),
        {
            "Subject": subject,
            "Session": session,
            "Reference": "T1w",
            "Inputs": {r: str(bids / base.with_(suffix=r).relpath) for r in ("T1w", "FLAIR")},
            "BrainExtraction": "template",
            "SkullStrippedInput": False,
            "InputOnMNIGrid": None,
            "MNIRegistration": "affine only",
            "TemplateCorrelation": 0.61,
            "TissueFit": 0.7,
            "RegistrationAttempts": [
                {"Method": "demons on T1w", "TemplateCorrelation": 0.42, "TissueFit": 0.5},
                {"Method": "affine only", "TemplateCorrelation": 0.61, "TissueFit": 0.7},
            ],
            "BrainCoverage": {"T1w": 1.0, "FLAIR": 0.88},
            "BrainVolume_ml": float(brain.sum() * 8 / 1000),
            "Registration": {"FLAIR": {"metric": -0.7}, "T1w": {"metric": None}},
            "SkippedSteps": {},
            "Warnings": list(warnings),
            "LesionMask": "candidates",
        },
    )

    init_derivative(pred, name="dawm predict", description="test", source=str(bids))
    o = pred / base.subject_dir()

    def oname(**kw) -> Path:
        return o / base.with_(**kw).filename

    save_volume(pred_labels, AFFINE, oname(space="session", desc="dawm", suffix="dseg"), dtype=np.uint8)
    write_json(
        oname(space="session", desc="dawm", suffix="dseg", extension=".json"),
        {
            "Inputs": ["T1w", "FLAIR"],
            "MissingInputs": [],
            "Model": "tiny",
            "ModelFolds": [0],
            "TTA": False,
            "Sources": [str(pname(space="session", desc="preproc", suffix=r)) for r in ("T1w", "FLAIR")],
        },
    )
    from scipy import ndimage

    for label, mask in (("lesion", lesion), ("DAWM", dawm)):
        save_volume(
            np.clip(ndimage.gaussian_filter(mask.astype(np.float32), 1.0) * 1.3, 0, 1),
            AFFINE,
            oname(space="session", label=label, suffix="probseg"),
            dtype=np.float32,
        )
    vox = 8 / 1000
    rows = [
        {
            "participant_id": f"sub-{subject}",
            "session_id": f"ses-{session}" if session else "n/a",
            "location": loc,
            "lesion_ml": lesion.sum() * vox * f,
            "dawm_ml": dawm.sum() * vox * f,
            "wm_ml": (tissues == 3).sum() * vox * f,
            "lesion_pct_wm": 1.0 * f,
            "dawm_pct_wm": 0.5 * f,
        }
        for loc, f in (("all", 1.0), ("periventricular", 0.5), ("juxtacortical", 0.2), ("deep", 0.3), ("infratentorial", 0.0))
    ]
    write_tsv(oname(desc="dawm", suffix="volumes", extension=".tsv"), pd.DataFrame(rows))
    write_json(pred / "provenance.json", {"config": {"bundled_model": True, "model_dir": "/models/bundled"}})
    return pred
