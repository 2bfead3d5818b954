"""The training cache: per case, uncompressed ``.npy`` arrays read with ``np.load(mmap_mode="r")``,
so sampling a patch reads only its bytes instead of decompressing a whole ``.nii.gz``.

Layout: ``<cache_dir>/<fingerprint>/<case key>/``

* ``image.npy`` (C, X, Y, Z) float32: the input channels in canonical (closest RAS) voxel order,
  each z-scored inside the brain mask (mean 0, SD 1 over brain voxels) and 0 outside it
  (:func:`normalise`; inference applies the same function);
* ``label.npy`` (X, Y, Z) uint8: 0 normal, 1 lesion, 2 DAWM (0 outside the brain);
* ``dawm.npy`` (X, Y, Z) float16: the DAWM target, 0-1 (:func:`dawm_target`: the labels'
  ``label-DAWM_probseg`` with ``dawm_target="soft"`` where the session has one, else label == 2;
  0 on lesions and outside the brain);
* ``tissue.npy`` (X, Y, Z) uint8: the preprocess tissue dseg (1 CSF, 2 GM, 3 WM; 0 outside the
  brain) and 4 for the deep grey nuclei (and the deepest cortex: insula, medial wall; GM or WM voxels where the MNI deep-GM prior pulled through
  the session's template transform is >= :data:`DEEP_GM_PRIOR_MIN`; :func:`tissue_classes`), for
  the per-tissue contrast randomisation of :mod:`dawm.model.augment`;
* ``brain.npy`` (X, Y, Z) uint8; ``locations.npz``: up to ``max_locations`` voxel indices (N, 3)
  per class (``lesion``, ``DAWM``, ``brain``) for the class-aware sampler; ``meta.json``.

The fingerprint hashes the input file names, sizes and modification times, the preprocess config,
the channel list and the DAWM target mode: changing any of them makes a new cache folder.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dawm.bids.derivative_files import PreprocessFiles
from dawm.bids.derivatives import write_json
from dawm.errors import InputError
from dawm.image.io import load_volume
from dawm.image.orientation import to_canonical
from dawm.image.registration import load_transform
from dawm.image.template import mni_deep_gm_prior
from dawm.model import MODALITIES
from dawm.model.data import Case

CACHE_VERSION = 3
#: Template deep-GM prior from which a GM/WM voxel is cached as deep grey matter (tissue 4).
DEEP_GM_PRIOR_MIN = 0.5
NORMALISATION = {
    "method": "zscore-in-brain",
    "outside_brain": 0.0,
    "orientation": "closest-RAS",
    "missing_channel": "zeros (the modality-dropout input)",
}


def normalise(channels: list[np.ndarray | None], brain: np.ndarray) -> np.ndarray:
    """Stack ``channels`` (each (X, Y, Z), None for a missing one) into (C, X, Y, Z) float32,
    each z-scored over ``brain`` voxels and 0 outside the brain (a missing channel: all 0)."""
    brain = np.asarray(brain, bool)
    out = np.zeros((len(channels), *brain.shape), np.float32)
    for i, ch in enumerate(channels):
        if ch is None:
            continue
        values = np.asarray(ch, np.float64)[brain]
        mean, sd = (values.mean(), values.std()) if values.size else (0.0, 1.0)
        out[i][brain] = ((values - mean) / max(sd, 1e-6)).astype(np.float32)
    return out


def tissue_classes(dseg: np.ndarray, brain: np.ndarray, deep_gm_prior: np.ndarray | None = None) -> np.ndarray:
    """(X, Y, Z) uint8 tissue classes: the preprocess ``dseg`` (1 CSF, 2 GM, 3 WM) inside ``brain``,
    and 4 (deep grey nuclei) where ``deep_gm_prior`` (0-1, same grid; none: no class 4) is at
    least :data:`DEEP_GM_PRIOR_MIN` on GM or WM voxels (the simulator's and many clinical
    sequences' deep nuclei are close to WM, so the EM may call them either)."""
    tissue = np.rint(np.nan_to_num(np.asarray(dseg, np.float32))).astype(np.uint8) * np.asarray(brain, bool)
    if deep_gm_prior is not None:
        tissue[(np.asarray(deep_gm_prior) >= DEEP_GM_PRIOR_MIN) & ((tissue == 2) | (tissue == 3))] = 4
    return tissue


def _deep_gm_prior(case: Case, shape: tuple[int, int, int], affine: np.ndarray) -> np.ndarray | None:
    """The template deep-GM prior on the case's session grid, or None without a template transform."""
    xfm = PreprocessFiles.of_file(case.preproc_log).from_template_xfm(case)
    if not xfm.exists():
        return None
    return mni_deep_gm_prior(load_transform(xfm), shape, affine)


def dawm_target(label: np.ndarray, prob: np.ndarray | None) -> np.ndarray:
    """The DAWM training target (X, Y, Z) float32 in 0-1 from the target dseg ``label`` (0/1/2) and,
    when given, a DAWM probability map ``prob`` (same shape): ``prob`` clipped to 0-1, else
    ``label == 2``; 0 on lesions (label 1), which stay a hard class."""
    soft = (np.asarray(label) == 2).astype(np.float32) if prob is None else np.clip(np.nan_to_num(np.asarray(prob, np.float32)), 0.0, 1.0)
    soft[np.asarray(label) == 1] = 0.0
    return soft


def fingerprint(cases: list[Case], channels: list[str], *, extra: dict | None = None) -> str:
    """16-hex hash of the inputs (names, sizes, mtimes of images, masks and targets), the
    preprocess config(s) found beside them, the channels, ``extra`` settings and the cache version."""
    items: list = [CACHE_VERSION, list(channels), extra or {}]
    configs = set()
    for c in sorted(cases, key=lambda c: c.key):
        for p in [*(c.images[MODALITIES[m]] for m in channels if MODALITIES[m] in c.images), c.brain, c.label, c.dawm_prob]:
            if p is None:
                continue
            st = Path(p).stat()
            items.append([Path(p).name, st.st_size, st.st_mtime_ns])
        configs.add(PreprocessFiles.of_file(c.preproc_log).config)
    for cfg in sorted(configs):
        items.append(cfg.read_text() if cfg.exists() else "")
    return hashlib.sha256(json.dumps(items, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class CachedCase:
    """Memory-mapped arrays of one case (see the module docstring for shapes and dtypes)."""

    key: str
    image: np.ndarray
    label: np.ndarray
    dawm: np.ndarray
    tissue: np.ndarray
    brain: np.ndarray
    locations: dict[str, np.ndarray]
    affine: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.label.shape)  # type: ignore[return-value]


def class_locations(label: np.ndarray, brain: np.ndarray, rng: np.random.Generator, max_locations: int = 20000) -> dict[str, np.ndarray]:
    """Voxel indices (N, 3) int32 of each sampling class (``lesion``: label 1, ``DAWM``: label 2,
    ``brain``: brain > 0), at most ``max_locations`` per class (a random subset, in index order)."""
    out = {}
    for name, mask in (("lesion", label == 1), ("DAWM", label == 2), ("brain", brain > 0)):
        idx = np.argwhere(mask).astype(np.int32)
        if len(idx) > max_locations:
            idx = idx[np.sort(rng.choice(len(idx), max_locations, replace=False))]
        out[name] = idx
    return out


def build_case(case: Case, channels: list[str], folder: Path, *, max_locations: int = 20000, seed: int = 0, soft: bool = True) -> Path:
    """Write one case's cache folder (skipped when its ``meta.json`` exists). Returns the folder.
    ``soft``: the DAWM target from the case's ``dawm_prob`` map when it has one (:func:`dawm_target`)."""
    folder = Path(folder)
    if (folder / "meta.json").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    brain_vol = load_volume(case.brain)
    brain = brain_vol.data > 0.5
    chans = [load_volume(case.images[MODALITIES[m]]).data if MODALITIES[m] in case.images else None for m in channels]
    image = normalise(chans, brain)
    label = np.zeros(brain.shape, np.uint8)
    if case.label is not None:
        lab = load_volume(case.label, allow_empty=True)
        if lab.shape != brain.shape or not np.allclose(lab.affine, brain_vol.affine, atol=1e-3):
            raise InputError(f"{case.label}: not on the session grid of {case.brain}")
        label = np.rint(lab.data).astype(np.uint8)
        label[~brain] = 0
    prob = None
    if soft and case.dawm_prob is not None and case.label is not None:
        prob = load_volume(case.dawm_prob, allow_empty=True).data
        if prob.shape != brain.shape:
            raise InputError(f"{case.dawm_prob}: not on the session grid of {case.brain}")
    target = dawm_target(label, prob)
    target[~brain] = 0.0
    tissue = tissue_classes(load_volume(case.dseg, allow_empty=True).data, brain, _deep_gm_prior(case, brain.shape, brain_vol.affine))
    image, affine = to_canonical(image, brain_vol.affine)
    label, _ = to_canonical(label, brain_vol.affine)
    target, _ = to_canonical(target, brain_vol.affine)
    tissue, _ = to_canonical(tissue, brain_vol.affine)
    brain_c, _ = to_canonical(brain.astype(np.uint8), brain_vol.affine)
    np.save(folder / "image.npy", image)
    np.save(folder / "label.npy", label)
    np.save(folder / "dawm.npy", target.astype(np.float16))
    np.save(folder / "tissue.npy", tissue.astype(np.uint8))
    np.save(folder / "brain.npy", brain_c)
    locs = class_locations(label, brain_c, np.random.default_rng([seed, 7]), max_locations)
    np.savez(folder / "locations.npz", **locs)
    write_json(
        folder / "meta.json",
        {
            "key": case.key,
            "channels": channels,
            "affine": affine,
            "shape": list(label.shape),
            "normalisation": NORMALISATION,
            "n_locations": {k: len(v) for k, v in locs.items()},
        },
    )
    return folder


def open_case(folder: str | Path) -> CachedCase:
    """Memory-map a case folder written by :func:`build_case`."""
    folder = Path(folder)
    meta = json.loads((folder / "meta.json").read_text())
    with np.load(folder / "locations.npz") as z:
        locs = {k: z[k] for k in z.files}
    return CachedCase(
        key=meta["key"],
        image=np.load(folder / "image.npy", mmap_mode="r"),
        label=np.load(folder / "label.npy", mmap_mode="r"),
        dawm=np.load(folder / "dawm.npy", mmap_mode="r"),
        tissue=np.load(folder / "tissue.npy", mmap_mode="r"),
        brain=np.load(folder / "brain.npy", mmap_mode="r"),
        locations=locs, affine=np.asarray(meta["affine"]),
    )  # fmt: skip


def build_cache(
    cases: list[Case], channels: list[str], cache_dir: str | Path, *, seed: int = 0, soft: bool = True, progress=None
) -> tuple[str, dict[str, CachedCase]]:
    """Cache every case under ``cache_dir/<fingerprint>``; returns ``(fingerprint, key -> CachedCase)``.

    ``soft``: DAWM targets from the labels' probability maps (:func:`dawm_target`).
    ``progress``: optional callable called once per case (e.g. a rich progress advance)."""
    fp = fingerprint(cases, channels, extra={"dawm_target": "soft" if soft else "hard"})
    root = Path(cache_dir) / fp
    out = {}
    for case in cases:
        out[case.key] = open_case(build_case(case, channels, root / case.key, seed=seed, soft=soft))
        if progress is not None:
            progress()
    return fp, out
