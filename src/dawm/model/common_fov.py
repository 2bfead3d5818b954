"""Volumes that compare between the sessions of a subject: measured inside the common field of view.

Clinical 2D protocols often cover the head only partly, and not the same part at every visit (one
real patient: 117 mm of slices at one session, 144 mm at the next). A brain, lesion or DAWM volume
of a session then depends on where its slices were placed. :func:`common_fov_volumes` maps every
session's field-of-view mask (``desc-fov_mask``: voxels inside all of its images) into MNI space,
intersects them, pulls the intersection back onto each session grid and measures the volumes there.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from dawm.bids.derivative_files import PreprocessFiles
from dawm.image.io import load_volume
from dawm.image.registration import load_transform
from dawm.image.resample import resample, voxel_sizes
from dawm.image.template import load_template


def common_fov_volumes(sessions: list[dict]) -> pd.DataFrame:
    """Volumes inside the field of view that every session of one subject shares.

    ``sessions``: one dict per session with ``participant_id``, ``session_id``, ``preproc_dir`` (the
    session's preprocess folder: ``*_desc-fov_mask``, ``*_desc-brain_mask``, both MNI transforms)
    and ``dseg`` (its predicted ``desc-dawm_dseg``, 0/1/2 on the session grid). Returns one row per
    session: ``brain_ml``, ``lesion_ml``, ``dawm_ml`` inside the common field of view, and
    ``common_fov_share`` (share of the session's brain mask inside it). Empty without two sessions
    that all have the needed files.
    """
    tpl = load_template(2)
    loaded = []
    for s in sessions:
        folder = Path(s["preproc_dir"])
        files = {
            k: PreprocessFiles.find_in_folder(folder, output)
            for k, output in (
                ("fov", "fov_mask"),
                ("brain", "brain_mask"),
                ("to_mni", "to_template_xfm"),
                ("from_mni", "from_template_xfm"),
            )
        }
        if any(v is None for v in files.values()):
            continue
        loaded.append((s, files))
    if len(loaded) < 2:
        return pd.DataFrame()
    common = np.ones(tpl.brain_mask.shape, bool)
    for _, files in loaded:
        fov = load_volume(files["fov"], allow_empty=True)
        common &= resample(fov.data > 0.5, fov.affine, tpl.brain_mask.shape, tpl.affine, load_transform(files["to_mni"]), "nearest")
    rows = []
    for s, files in loaded:
        brain = load_volume(files["brain"])
        inside = resample(common, tpl.affine, brain.shape, brain.affine, load_transform(files["from_mni"]), "nearest")
        dseg = np.rint(load_volume(s["dseg"], allow_empty=True).data).astype(np.uint8)
        mask = brain.data > 0.5
        vox_ml = float(np.prod(voxel_sizes(brain.affine))) / 1000.0
        rows.append(
            {
                "participant_id": s["participant_id"],
                "session_id": s["session_id"],
                "common_fov_share": round(float((mask & inside).sum() / max(mask.sum(), 1)), 4),
                "brain_ml": float((mask & inside).sum()) * vox_ml,
                "lesion_ml": float(((dseg == 1) & inside).sum()) * vox_ml,
                "dawm_ml": float(((dseg == 2) & inside).sum()) * vox_ml,
            }
        )
    return pd.DataFrame(rows)
