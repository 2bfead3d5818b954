"""Voxel transitions and new / enlarging lesions on tiny hand-made label maps."""

from __future__ import annotations

import numpy as np
import pytest

from dawm.longitudinal.lesions import lesion_changes
from dawm.longitudinal.transitions import NOT_COMPARED, TRANSITION_CODES, transition_map, transition_volumes
from dawm.simulate.pathology import TRANSITIONS


def test_codes_agree_with_the_simulator():
    for code, name in TRANSITIONS.items():
        assert TRANSITION_CODES[code] == name


def test_new_lesion_and_dawm_that_becomes_lesion():
    b = np.zeros((12, 12, 12), np.uint8)
    f = np.zeros_like(b)
    b[2:4, 2:4, 2:4] = 2  # 8 voxels of DAWM ...
    f[2:4, 2:4, 2:4] = 1  # ... that become lesion
    f[8:10, 8:10, 8] = 1  # a new lesion of 4 voxels in normal tissue
    f[0, 11, 0] = 1  # 1 voxel: below the 3-voxel minimum, no lesion
    b[6, 6, 6:9] = 1
    f[6, 6, 6:9] = 1  # a lesion at both sessions, unchanged
    f[11, 0, 11] = NOT_COMPARED
    t = transition_map(b, f)
    assert (t[2:4, 2:4, 2:4] == 2).all() and (t[8:10, 8:10, 8] == 5).all() and (t[6, 6, 6:9] == 6).all()
    assert t[11, 0, 11] == NOT_COMPARED and t[0, 0, 0] == 0
    v = transition_volumes(b, f, 0.001)
    assert v["dawm_to_lesion_ml"] == pytest.approx(0.008) and v["dawm_to_lesion_frac"] == pytest.approx(1.0)
    assert v["new_lesion_ml"] == pytest.approx(0.005)  # voxel-wise: the 4-voxel lesion and the single voxel

    ch = lesion_changes(b == 1, f == 1, 0.001)
    # the DAWM that became lesion touches no baseline lesion: a new lesion too; the single voxel is none
    assert (ch.n_new, ch.n_enlarging, ch.n_baseline, ch.n_followup) == (2, 0, 1, 3)
    assert ch.new_ml == pytest.approx(0.012)
    assert ch.change_map[9, 9, 8] == 1 and ch.change_map[0, 11, 0] == 0 and ch.change_map[6, 6, 7] == 0


def test_enlarging_lesions_need_half_again_their_volume_and_three_voxels():
    b = np.zeros((16, 16, 16), bool)
    b[2:4, 2:4, 2:4] = True  # 8 voxels
    b[10:12, 10:12, 10:12] = True  # 8 voxels
    f = b.copy()
    f[2:4, 2:4, 4:6] = True  # 16 voxels (x2): enlarging, 8 grown voxels
    f[10:12, 10:12, 12] = True  # 12 voxels (x1.5, +4): enlarging, just
    ch = lesion_changes(b, f, 1.0)
    assert (ch.n_new, ch.n_enlarging) == (0, 2)
    assert ch.enlarging_ml == 12.0 and not (ch.enlarging & b).any()
    assert ch.change_map[2, 2, 5] == 2 and ch.change_map[2, 2, 2] == 0

    small_growth = b.copy()
    small_growth[10:12, 10, 12] = True  # +2 voxels (x1.25): not enlarging
    assert lesion_changes(b, small_growth, 1.0).n_enlarging == 0
    tiny = np.zeros_like(b)
    tiny[5, 5, 5] = True
    grown = tiny.copy()
    grown[5, 5, 6] = True  # x2 but only +1 voxel: not enlarging
    assert lesion_changes(tiny, grown, 1.0).n_enlarging == 0
    merged = b.copy()
    merged[3, 3, 4:10] = True
    merged[3:10, 3, 10] = True
    merged[10, 3:10, 10] = True  # the two baseline lesions (16 voxels) joined by a 20-voxel bridge: 36 >= 1.5 x 16
    # -> one enlarging lesion, counted once
    out = lesion_changes(b, merged, 1.0)
    assert (out.n_enlarging, out.n_followup, out.n_baseline) == (1, 1, 2)
    with pytest.raises(ValueError):
        lesion_changes(b, f[:-1], 1.0)
