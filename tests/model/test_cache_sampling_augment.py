"""The training cache (round trip, memory map, fingerprint), class-aware sampling, augmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dawm.image.io import load_volume
from dawm.image.orientation import from_canonical, to_canonical
from dawm.model.augment import RandThickSliced, augment_patch, modality_dropout, training_transforms
from dawm.model.cache import CachedCase, build_cache, class_locations, fingerprint, normalise
from dawm.model.data import discover_cases
from dawm.model.sampling import PatchSampler, crop


@pytest.fixture(scope="module")
def cached(model_cohort: Path, tmp_path_factory):
    cases = discover_cases(model_cohort)
    fp, cache = build_cache(cases, ["t1w", "flair"], tmp_path_factory.mktemp("cache"))
    return cases, fp, cache


def test_cases_carry_group_and_scanner(model_cohort: Path) -> None:
    cases = discover_cases(model_cohort)
    assert {c.key for c in cases} == {"sub-hc001_ses-01", "sub-ms001_ses-01", "sub-ms002_ses-01"}
    assert {c.subject: c.scanner for c in cases} == {"hc001": "prisma3t", "ms001": "prisma3t", "ms002": "achieva3t"}
    assert {c.subject: c.group for c in cases}["hc001"] == "HC"
    assert all(set(c.images) == {"T1w", "FLAIR"} and c.label is not None for c in cases)


def test_cache_round_trips_memory_mapped(cached) -> None:
    cases, fp, cache = cached
    case = cases[0]
    c = cache[case.key]
    assert isinstance(c.image, np.memmap) and isinstance(c.label, np.memmap) and c.image.dtype == np.float32 and c.label.dtype == np.uint8
    brain_vol = load_volume(case.brain)
    brain = brain_vol.data > 0.5
    expected = normalise([load_volume(case.images["T1w"]).data, load_volume(case.images["FLAIR"]).data], brain)
    np.testing.assert_array_equal(from_canonical(np.asarray(c.image), brain_vol.affine), expected)
    label = np.rint(load_volume(case.label, allow_empty=True).data).astype(np.uint8) * brain
    np.testing.assert_array_equal(from_canonical(np.asarray(c.label), brain_vol.affine), label)
    inside = np.asarray(c.image)[:, np.asarray(c.brain) > 0]
    np.testing.assert_allclose(inside.mean(1), 0, atol=1e-4)
    np.testing.assert_allclose(inside.std(1), 1, atol=1e-3)
    assert fingerprint(cases, ["t1w", "flair"], extra={"dawm_target": "soft"}) == fp != fingerprint(cases, ["flair"])
    assert fingerprint(cases, ["t1w", "flair"], extra={"dawm_target": "hard"}) != fp


def test_canonical_orientation_round_trip() -> None:
    rng = np.random.default_rng(0)
    a = rng.random((2, 4, 5, 6)).astype(np.float32)
    lps = np.diag([-2.0, -2.0, 2.0, 1.0])
    c, aff = to_canonical(a, lps)
    assert c.shape == a.shape and np.all(np.diag(aff)[:3] > 0)
    np.testing.assert_array_equal(c[:, ::-1, ::-1, :], a)
    np.testing.assert_array_equal(from_canonical(c, lps), a)


def test_sampler_hits_classes_at_requested_rates(cached) -> None:
    _, _, cache = cached
    cases = list(cache.values())
    sampler = PatchSampler(cases, (24, 24, 24), fractions=(0.4, 0.3, 0.3), seed=3)
    assert sampler.available()["lesion"] >= 1 and sampler.available()["DAWM"] >= 1
    n = 600
    patches = [sampler.sample(i, epoch=0) for i in range(n)]
    centre = np.array([p.label[12, 12, 12] for p in patches])
    kinds = np.array([p.kind for p in patches])
    assert abs((centre == 1).mean() - 0.4) < 0.06
    assert abs((centre == 2).mean() - 0.3) < 0.06
    assert np.all(centre[kinds == "lesion"] == 1) and np.all(centre[kinds == "DAWM"] == 2)
    again = sampler.sample(17, epoch=0)
    np.testing.assert_array_equal(again.image, patches[17].image)
    assert sampler.sample(17, epoch=1).centre != again.centre or sampler.sample(17, epoch=1).case != again.case


def _case_with_lesions(key: str, lesions: list[tuple[slice, slice, slice]], shape=(30, 30, 30)) -> CachedCase:
    label = np.zeros(shape, np.uint8)
    for box in lesions:
        label[box] = 1
    brain = np.ones(shape, np.uint8)
    locations = class_locations(label, brain, np.random.default_rng(0))
    z = np.zeros(shape, np.float32)
    return CachedCase(key, z[None], label, z.astype(np.float16), label * 0, brain, locations, np.eye(4))


def test_lesion_wise_sampling_shows_small_lesions_as_often_as_large_ones() -> None:
    big = (slice(2, 14), slice(2, 14), slice(2, 14))  # 1728 voxels
    small = (slice(20, 21), slice(20, 22), slice(20, 21))  # 2 voxels
    cases = [_case_with_lesions("a", [big, small]), _case_with_lesions("b", [small])]
    n = 400

    def share_small(sampler: PatchSampler) -> float:
        centres = [sampler.sample(i).centre for i in range(n)]
        return float(np.mean([c[0] >= 20 for c in centres]))

    voxel = PatchSampler(cases, (8, 8, 8), fractions=(1, 0, 0), seed=1)
    lesion = PatchSampler(cases, (8, 8, 8), fractions=(1, 0, 0), seed=1, lesion_sampling="lesion")
    # voxel-wise: case b half of the time (its only lesion is small), in case a the 2 voxels of 1730
    assert abs(share_small(voxel) - 0.5) < 0.08
    # lesion-wise: 3 lesions, 2 of them small, each drawn equally often
    assert abs(share_small(lesion) - 2 / 3) < 0.08
    single = PatchSampler(cases[:1], (8, 8, 8), fractions=(1, 0, 0), seed=1, lesion_sampling="lesion")
    assert abs(share_small(single) - 0.5) < 0.08 and share_small(PatchSampler(cases[:1], (8, 8, 8), fractions=(1, 0, 0))) < 0.02
    assert all(lesion.sample(i).label[4, 4, 4] == 1 for i in range(20))
    assert lesion.sample(5, epoch=2).centre == lesion.sample(5, epoch=2).centre  # deterministic
    with pytest.raises(ValueError, match="lesion_sampling"):
        PatchSampler(cases, (8, 8, 8), lesion_sampling="component")


def test_crop_pads_outside_the_volume() -> None:
    a = np.arange(27, dtype=np.float32).reshape(3, 3, 3)
    out = crop(a, (0, 0, 0), (3, 3, 3))
    assert out.shape == (3, 3, 3) and out[1, 1, 1] == a[0, 0, 0] and out[0].sum() == 0


def test_augmentation_keeps_shapes_and_integer_labels() -> None:
    rng = np.random.default_rng(0)
    image = rng.normal(size=(2, 40, 40, 40)).astype(np.float32)
    label = (rng.random((40, 40, 40)) * 3).astype(np.uint8)
    tf = training_transforms((32, 32, 32))
    soft = np.where(label == 2, rng.uniform(0.2, 1.0, label.shape), 0.0).astype(np.float16)
    for seed in range(6):
        img, lab, dawm = augment_patch(tf, image, label, seed, dawm=soft)
        assert img.shape == (2, 32, 32, 32) and img.dtype == torch.float32
        assert lab.shape == (1, 32, 32, 32) and lab.dtype == torch.int64
        assert set(torch.unique(lab).tolist()) <= {0, 1, 2}
        # the soft target follows the label through the same geometry (nearest neighbour)
        assert dawm.shape == lab.shape and dawm.dtype == torch.float32
        assert float(dawm[lab != 2].abs().max()) == 0.0 and float(dawm[lab == 2].min()) >= 0.2 - 1e-3
    a, _, _ = augment_patch(tf, image, label, 5)
    b, _, d = augment_patch(tf, image, label, 5)
    assert torch.equal(a, b)  # deterministic for a seed
    assert set(torch.unique(d).tolist()) <= {0.0, 1.0}  # without a soft target: label == 2


def test_thick_slices_and_modality_dropout() -> None:
    img = torch.from_numpy(np.random.default_rng(1).normal(size=(2, 16, 16, 16)).astype(np.float32))
    t = RandThickSliced(("image",), prob=1.0, max_factor=4)
    t.set_random_state(seed=0)
    out = t({"image": img})["image"]
    assert out.shape == img.shape
    changed = [not torch.equal(out[c], img[c]) for c in range(2)]
    assert sum(changed) == 1
    x = np.ones((2, 4, 4, 4), np.float32)
    dropped = [modality_dropout(x, 1.0, np.random.default_rng(s)) for s in range(10)]
    assert all(d.sum() == 64 for d in dropped)  # exactly one channel zeroed, never both
    assert modality_dropout(x[:1], 1.0, np.random.default_rng(0)).sum() == 64  # one channel: never dropped


def test_tissue_contrast_scales_grey_matter_against_white_matter() -> None:
    from dawm.model.augment import RandTissueContrastd

    image = torch.full((2, 20, 20, 20), 1.0)
    label = torch.zeros((3, 20, 20, 20))
    label[2] = 3  # WM everywhere ...
    label[2, :10] = 2  # ... but GM in the first half
    image[:, :10] = 2.0  # GM brighter by 1 on both channels
    label[0, 2:5, 2:5, 2:5] = 1  # a lesion inside the GM half stays as it is
    t = RandTissueContrastd("image", "label", prob=1.0, factors=(0.5, 0.5), sigma=0.5)
    t.set_random_state(seed=0)
    out = t({"image": image, "label": label})["image"]
    torch.testing.assert_close(out[:, 15:], image[:, 15:])  # WM unchanged
    torch.testing.assert_close(out[:, 5:8, 10:, 10:], torch.full_like(out[:, 5:8, 10:, 10:], 1.5))  # GM - WM halved
    torch.testing.assert_close(out[:, 3, 3, 3], image[:, 3, 3, 3], atol=0.05, rtol=0)  # the lesion is left alone
    no_tissue = t({"image": image, "label": label[:2]})["image"]  # without the tissue channel: unchanged
    torch.testing.assert_close(no_tissue, image)


def test_tissue_contrast_moves_deep_grey_nuclei_by_an_offset() -> None:
    from dawm.model.augment import RandTissueContrastd

    image = torch.full((1, 20, 20, 20), 1.0)  # deep GM as bright as WM (the simulator's FLAIR)
    label = torch.zeros((3, 20, 20, 20))
    label[2] = 3
    label[2, 6:14, 6:14, 6:14] = 4  # deep nuclei in the middle
    t = RandTissueContrastd("image", "label", prob=1.0, deep_offsets=(0.8, 0.8), sigma=0.5)
    t.set_random_state(seed=0)
    out = t({"image": image, "label": label})["image"]
    torch.testing.assert_close(out[0, 8:12, 8:12, 8:12], torch.full((4, 4, 4), 1.8))  # a scale of 0 difference could not move them
    torch.testing.assert_close(out[0, :4], image[0, :4])  # WM unchanged


def test_tissue_classes_mark_deep_grey_nuclei_on_grey_and_white_matter() -> None:
    from dawm.model.cache import DEEP_GM_PRIOR_MIN, tissue_classes

    dseg = np.array([[[1, 2, 3, 3, 0]]], np.float32)
    brain = dseg > 0
    prior = np.full(dseg.shape, DEEP_GM_PRIOR_MIN, np.float32)
    np.testing.assert_array_equal(tissue_classes(dseg, brain, prior), [[[1, 4, 4, 4, 0]]])  # CSF stays CSF
    np.testing.assert_array_equal(tissue_classes(dseg, brain, prior * 0.9), [[[1, 2, 3, 3, 0]]])
    np.testing.assert_array_equal(tissue_classes(dseg, brain), [[[1, 2, 3, 3, 0]]])
