"""The tiny training config that the model tests share (the ``trained`` fixture of conftest.py)."""

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np

from dawm.model.config import TrainConfig

TINY = TrainConfig(
    preset="tiny",
    patch_size=(16, 16, 16),
    inference_patch_size=(48, 48, 48),
    batch_size=2,
    iterations_per_epoch=2,
    max_epochs=2,
    folds=3,
    modality_dropout=0.3,
    sw_batch_size=4,
)


def add_empty_t1_session(src_anat: Path, bids: Path, subject: str = "bad") -> None:
    """Add ``sub-<subject>/ses-01`` to ``bids``: the FLAIR and sidecars of ``src_anat`` (a
    ``sub-ms001/ses-01/anat`` folder) and an all-zero T1w, a session that fails preprocessing."""
    bad = bids / f"sub-{subject}" / "ses-01" / "anat"
    bad.mkdir(parents=True)
    for role in ("T1w", "FLAIR"):
        shutil.copy(src_anat / f"sub-ms001_ses-01_{role}.json", bad / f"sub-{subject}_ses-01_{role}.json")
    shutil.copy(src_anat / "sub-ms001_ses-01_FLAIR.nii.gz", bad / f"sub-{subject}_ses-01_FLAIR.nii.gz")
    t1 = nib.load(src_anat / "sub-ms001_ses-01_T1w.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros(t1.shape, np.float32), t1.affine), bad / f"sub-{subject}_ses-01_T1w.nii.gz")
