"""Training targets from the simulator's truth: the true lesions with another label folder's DAWM."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dawm.bids.derivative_files import LabelFiles, PreprocessFiles
from dawm.image.io import load_volume, save_volume
from dawm.simulate.truth import truth_dseg_on_session_grid, write_truth_labels


def test_true_lesions_with_the_dawm_of_another_label_folder(model_cohort: Path) -> None:
    pre = PreprocessFiles.in_dataset(model_cohort)
    fake = LabelFiles.in_dataset(model_cohort, "dawm-label-fake")
    sessions = list(pre.sessions())
    rng = np.random.default_rng(0)
    for s in sessions[1:]:  # the first session has no label in the source folder: it is skipped
        truth, affine = truth_dseg_on_session_grid(model_cohort, pre.log(s))
        other = np.zeros_like(truth)
        other[2:8, 2:8, 2:8] = 2  # DAWM somewhere else than the truth's
        other[10:12, 10:12, 10:12] = 1  # a lesion the truth does not have
        other[truth == 1] = 2  # and DAWM where the true lesions are
        save_volume(other, affine, fake.dseg(s), dtype=np.uint8)
        save_volume(rng.random(truth.shape).astype(np.float32), affine, fake.dawm_probseg(s), dtype=np.float32)

    out = LabelFiles.in_dataset(model_cohort, "dawm-label-mixed")
    write_truth_labels(model_cohort, name="dawm-label-mixed", dawm_from="dawm-label-fake")
    assert not out.dseg(sessions[0]).exists()
    for s in sessions[1:]:
        truth, _ = truth_dseg_on_session_grid(model_cohort, pre.log(s))
        other = np.rint(load_volume(fake.dseg(s), allow_empty=True).data)
        mixed = np.rint(load_volume(out.dseg(s), allow_empty=True).data)
        np.testing.assert_array_equal(mixed == 1, truth == 1)
        np.testing.assert_array_equal(mixed == 2, (other == 2) & (truth != 1))
        assert (truth == 1).any() or s.subject.startswith("hc")
        np.testing.assert_array_equal(load_volume(out.dawm_probseg(s)).data, load_volume(fake.dawm_probseg(s)).data)
