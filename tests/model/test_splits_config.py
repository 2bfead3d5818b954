"""Subject-level splits (k-fold stratified, leave-one-scanner-out), their reuse, configs, networks."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from dawm.errors import InputError
from dawm.model.config import TrainConfig
from dawm.model.data import Case, load_or_make_split, make_split
from dawm.model.networks import build_network, n_parameters


def _cases(n_subjects: int = 12, sessions: int = 2) -> list[Case]:
    scanners, groups = ("prisma3t", "achieva3t", "skyra15t"), ("HC", "RRMS", "SPMS")
    out = []
    for i in range(n_subjects):
        for s in range(sessions):
            p = Path(f"/x/sub-s{i:02d}_ses-{s}")
            out.append(
                Case(
                    subject=f"s{i:02d}",
                    session=f"{s + 1:02d}",
                    images={"T1w": p},
                    brain=p,
                    dseg=p,
                    preproc_log=p,
                    label=p,
                    group=groups[i % 3],
                    scanner=scanners[(i // 3) % 3],
                )
            )
    return out


def test_kfold_subjects_never_in_two_folds_and_balanced() -> None:
    cases = _cases()
    split = make_split(cases, mode="kfold", folds=4, seed=1, test_fraction=0.25)
    test = set(split["test"])
    assert len(test) == 3
    vals = [set(f["val"]) for f in split["folds"]]
    for k, f in enumerate(split["folds"]):
        assert not set(f["train"]) & set(f["val"]) and not (set(f["train"]) | set(f["val"])) & test
        for j in range(k):
            assert not vals[j] & vals[k]
    assert set().union(*vals) | test == {c.subject for c in cases}
    assert max(map(len, vals)) - min(map(len, vals)) <= 1
    # the test set is stratified: 3 subjects from 3 different (scanner, group) strata
    strata = {(c.scanner, c.group) for c in cases if c.subject in test}
    assert len(strata) == 3
    assert make_split(cases, mode="kfold", folds=4, seed=1, test_fraction=0.25) == split  # deterministic


def test_loso_holds_one_scanner_out() -> None:
    cases = _cases()
    split = make_split(cases, mode="loso", folds=5, seed=0)
    assert [f["held_out"] for f in split["folds"]] == sorted({c.scanner for c in cases})
    scanner = {c.subject: c.scanner for c in cases}
    for f in split["folds"]:
        assert {scanner[s] for s in f["val"]} == {f["held_out"]}
        assert f["held_out"] not in {scanner[s] for s in f["train"]}
    with pytest.raises(InputError, match="two scanners"):
        make_split([c for c in cases if c.scanner == "prisma3t"], mode="loso", folds=2, seed=0)
    with pytest.raises(InputError, match="folds"):
        make_split(_cases(2), mode="kfold", folds=5, seed=0)


def test_split_is_saved_and_reused(tmp_path: Path) -> None:
    cases = _cases()
    path = tmp_path / "split.json"
    first = load_or_make_split(path, cases, mode="kfold", folds=3, seed=0, stratify_dawm=False)  # no label files here
    assert json.loads(path.read_text()) == first
    again = load_or_make_split(path, cases, mode="kfold", folds=3, seed=99)  # another seed: the saved split wins
    assert again == first
    with pytest.raises(InputError, match="loso"):
        load_or_make_split(path, cases, mode="loso", folds=3, seed=0)
    with pytest.raises(InputError, match="no data now"):
        load_or_make_split(path, cases[4:], mode="kfold", folds=3, seed=0)


def test_split_spreads_subjects_with_dawm_over_validation_folds(tmp_path: Path) -> None:
    """Validation sets get subjects whose labels hold DAWM (one each when there are as many as folds)."""
    import numpy as np

    from dawm.image.io import save_volume

    cases = []
    for c in _cases(n_subjects=12, sessions=1):
        label = np.zeros((4, 4, 4), np.uint8)
        label[1, 1, 1] = 1
        if int(c.subject[1:]) % 3 == 0:  # s00, s03, s06, s09: 1 ml of DAWM (8 voxels of 5 mm)
            label[2:4, 2:4, 2:4] = 2
        elif c.subject == "s01":  # 0.125 ml: scattered false positives, not a subject with DAWM
            label[3, 3, 3] = 2
        save_volume(label, np.diag([5.0, 5.0, 5.0, 1.0]), tmp_path / f"{c.subject}_dseg.nii.gz", dtype=np.uint8)
        cases.append(replace(c, label=tmp_path / f"{c.subject}_dseg.nii.gz"))
    for seed in range(5):
        path = tmp_path / f"split{seed}.json"
        split = load_or_make_split(path, cases, mode="kfold", folds=4, seed=seed)
        assert [sum(s in {"s00", "s03", "s06", "s09"} for s in f["val"]) for f in split["folds"]] == [1, 1, 1, 1]
        assert split["subjects"]["s03"]["dawm"] and not split["subjects"]["s01"]["dawm"]


def test_config_presets_and_validation() -> None:
    cfg = TrainConfig().resolved()
    assert cfg.patch_size == (64, 64, 64) and cfg.optimizer == "adamw" and cfg.channels == ["t1w", "flair"]
    gpu = TrainConfig(preset="gpu").resolved()
    assert gpu.patch_size == (128, 128, 128) and gpu.optimizer == "adamw"
    with pytest.raises(ValueError, match="divisible"):
        TrainConfig(patch_size=(40, 40, 40))
    with pytest.raises(ValueError, match="sum to 1"):
        TrainConfig(class_fractions=(0.5, 0.5, 0.5))


def test_network_sizes() -> None:
    assert 1e6 < n_parameters(build_network("cpu-small", 2)) < 5e6
    assert 25e6 < n_parameters(build_network("gpu", 2)) < 35e6


def test_controls_are_spread_over_the_validation_folds() -> None:
    """3 controls on 3 scanners among 12 patients, 5 folds: each control in another fold, so that no
    validation fold is controls only (its checkpoint choice would have no lesion to score)."""
    scanners = ("prisma3t", "achieva3t", "skyra15t")
    cases = []
    for i in range(15):
        p = Path(f"/x/sub-s{i:02d}")
        cases.append(
            Case(
                subject=f"s{i:02d}",
                session=None,
                images={"T1w": p},
                brain=p,
                dseg=p,
                preproc_log=p,
                label=p,
                group="HC" if i < 3 else "RRMS",
                scanner=scanners[i % 3],
            )
        )
    for seed in range(5):
        split = make_split(cases, mode="kfold", folds=5, seed=seed, dawm_subjects=set())
        folds_of_controls = [k for k, f in enumerate(split["folds"]) for s in f["val"] if s in {"s00", "s01", "s02"}]
        assert len(set(folds_of_controls)) == 3, split["folds"]
        assert all(any(s not in {"s00", "s01", "s02"} for s in f["val"]) for f in split["folds"])
