"""Rigid follow-up -> baseline alignment of tiny synthetic sessions: a shifted follow-up is
recovered, its lesion changes are found where they were put, and a failed alignment is reported."""

from __future__ import annotations

import numpy as np
import pytest
from longitudinal_phantoms import DAWM_TO_LESION, NEW_LESION, VOX_ML, session

from dawm.longitudinal.alignment import AlignmentError, align_sessions, followup_on_baseline
from dawm.longitudinal.lesions import components, lesion_changes
from dawm.longitudinal.transitions import NOT_COMPARED, transition_volumes

SHIFT = np.array([4.0, -3.0, 2.5])  # follow-up content moved by +SHIFT mm


def _pair():
    return session((-31.0, -31.0, -31.0)), session((-30.0, -31.0, -32.0), SHIFT, followup=True)


def test_shifted_followup_is_recovered_and_changes_found():
    b, f = _pair()
    aln = align_sessions({"T1w": b["image"]}, {"T1w": f["image"]}, b["affine"], f["affine"], b["brain"], f["brain"])
    assert aln.image == "T1w" and aln.brain_dice > 0.95
    assert aln.translation_mm == pytest.approx(np.linalg.norm(SHIFT), abs=0.5) and aln.rotation_deg < 1.0
    pts = np.array([c for c, _ in (NEW_LESION, DAWM_TO_LESION)])
    moved = pts @ aln.matrix_ras[:3, :3].T + aln.matrix_ras[:3, 3]
    assert np.abs(moved - (pts + SHIFT)).max() < 0.5  # pull: baseline world -> follow-up world

    labels = followup_on_baseline(f["labels"], f["affine"], b["labels"].shape, b["affine"], aln.matrix_ras, fill_value=NOT_COMPARED)
    assert labels.dtype == np.uint8
    v = transition_volumes(b["labels"], labels, VOX_ML)
    # nearest-neighbour sampling of 4.5 mm balls on 2 mm grids offset by 1 mm: the rims differ
    assert v["dawm_to_lesion_frac"] > 0.6 and v["lesion_persistent_ml"] > 0.3
    ch = lesion_changes(b["labels"] == 1, labels == 1, VOX_ML)
    # the lesion grown out of DAWM and the lesion in normal tissue are both new (no baseline lesion there)
    assert (ch.n_new, ch.n_enlarging) == (2, 0)
    assert ch.new_ml == pytest.approx(2 * 4 / 3 * np.pi * 4.5**3 / 1000, rel=0.3)
    lab, n = components(ch.new)
    found = sorted(tuple(np.argwhere(lab == i).mean(axis=0) @ b["affine"][:3, :3].T + b["affine"][:3, 3]) for i in (1, 2))
    expected = sorted(tuple(c) for c, _ in (NEW_LESION, DAWM_TO_LESION))
    assert np.abs(np.array(found) - np.array(expected)).max() < 1.5  # mm: where they were put (the shift is 5.6 mm)

    unaligned = followup_on_baseline(f["labels"], f["affine"], b["labels"].shape, b["affine"], None, fill_value=NOT_COMPARED)
    u = transition_volumes(b["labels"], unaligned, VOX_ML)
    assert u["dawm_to_lesion_frac"] < v["dawm_to_lesion_frac"] - 0.3 and u["lesion_persistent_ml"] < v["lesion_persistent_ml"] - 0.1


def test_alignment_failures_are_reported():
    b, f = _pair()
    with pytest.raises(AlignmentError, match="Dice"):
        align_sessions({"T1w": b["image"]}, {"T1w": f["image"]}, b["affine"], f["affine"], b["brain"], f["brain"], min_brain_dice=1.01)
    with pytest.raises(AlignmentError, match="registration failed"):
        align_sessions({"T1w": b["image"]}, {"T1w": np.zeros_like(f["image"])}, b["affine"], f["affine"], b["brain"], f["brain"])
    with pytest.raises(AlignmentError, match="no preprocessed image"):
        align_sessions({}, {"T1w": f["image"]}, b["affine"], f["affine"], b["brain"], f["brain"])
