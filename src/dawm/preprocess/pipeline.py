"""The ``dawm preprocess`` stage: every session's images on one grid, bias-corrected, brain-masked,
segmented, registered to MNI, with image-quality metrics and a QC figure.

Per session (:func:`preprocess_session`):

1. **load** every available image with :func:`dawm.image.io.load_volume` (header scaling applied,
   NaN/inf -> 0 and counted; array axes put in the closest RAS order, :func:`~dawm.image.io.as_closest_canonical`); T1 maps converted to ms and MTR maps to percent from the sidecar
   ``Units`` (or inferred, the decision logged).
2. **coregister**: the session grid is a ``spacing_mm`` isotropic grid over the reference image
   (first available of ``reference_roles``). Images from one acquisition share a geometry group
   (MP2RAGE: UNIT1/inv1/inv2/T1map; MT: mt-off/mt-on/MTRmap): one representative per group is
   registered rigidly (Mattes MI) to the reference and the transform reused for the others.
3. **resample** onto the session grid (linear for images).
4. **brain**: :func:`dawm.preprocess.brain.extract_brain` on the reference (or a user mask).
5. **bias**: N4 on the weighted images only (never T1map/MTRmap), fitted in the dilated brain.
6. **mni**: deformable registration of the T1-like bias-corrected brain to the MNI template;
   both directions saved as ITK ``.h5``.
7. **segment**: MNI tissue priors pulled onto the session grid, :func:`segment_tissues` on the
   bias-corrected channels, a given lesion mask forced to WM.
8. **iqm**: MRIQC-style metrics of each weighted image on its own grid (mask, tissues and N4 field
   pulled back), one TSV per session. 9. **qc**: a PNG. 10. **write**: all outputs, atomically;
   the session log JSON is written last and marks the session complete.

The steps are three functions: :func:`load_session` (step 1 and the user masks: files -> arrays),
:func:`preprocess_arrays` (steps 2-8, the pure array core: images + affines + config in, a
:class:`PreprocessedSession` of arrays and in-memory transforms out, no file I/O) and
:func:`write_preprocessed` (steps 9-10; the MNI transforms become ITK ``.h5`` files there).

Transforms follow the pull convention of :mod:`dawm.image.resample`: a ``from-<group>_to-session``
matrix maps session-world RAS mm to the group's scanner-world RAS mm.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from scipy import ndimage

from dawm.bids.derivative_files import PREPROC_ROLES, MaskFiles, PreprocessFiles
from dawm.bids.derivatives import init_derivative, write_dseg_tsv, write_json, write_tsv
from dawm.bids.entities import parse_name
from dawm.bids.layout import ROLES, SessionInputs, dataset_root, discover_sessions
from dawm.errors import InputError
from dawm.image.io import Volume, as_closest_canonical, load_volume, save_volume
from dawm.image.registration import (
    LinearRegistration,
    nonlinear_register,
    rigid_register,
    save_transform,
    transform_points,
)
from dawm.image.resample import isotropic_grid, resample, voxel_sizes
from dawm.image.template import Template, load_template
from dawm.image.units import mtr_to_percent, t1_to_ms
from dawm.labels import TISSUE_LABELS
from dawm.parallel import Backend, Outcome, map_threads, run_all
from dawm.preprocess.bias import correct_bias
from dawm.preprocess.brain import (
    BrainExtraction,
    extract_brain,
    prior_fit,
    template_brain_mask,
)
from dawm.preprocess.config import WEIGHTED_ROLES, PreprocessConfig
from dawm.preprocess.qc import qc_figure
from dawm.preprocess.quality import image_quality
from dawm.preprocess.tissues import TissuePriors, TissueSegmentation, segment_tissues
from dawm.provenance import provenance

log = logging.getLogger(__name__)

STAGE = PreprocessFiles.NAME
#: Acquisitions sharing one geometry; the first available role of each is registered.
GEOMETRY_GROUPS: dict[str, tuple[str, ...]] = {
    "T1w": ("T1w",),
    "FLAIR": ("FLAIR",),
    "MP2RAGE": ("UNIT1", "inv2", "inv1", "T1map"),
    "MT": ("mtoff", "mton", "MTRmap"),
}
GROUP_OF = {role: group for group, roles in GEOMETRY_GROUPS.items() for role in roles}
#: Roles written as ``_space-session_desc-preproc_<role>`` images.
PREPROC_OUTPUTS = PREPROC_ROLES
_T1_LIKE = ("T1w", "UNIT1")


@dataclass(frozen=True)
class SessionResult:
    """What :func:`preprocess_session` did for one session.

    ``out_dir``: its derivative folder; ``reference``: role defining the session grid;
    ``missing``: roles absent from the input; ``skipped_steps``: step -> reason; ``timings_s``:
    step -> seconds (``coregister`` and ``brain`` run side by side, so their times overlap);
    ``iqm``: one metrics dict per image; ``reused``: True when an earlier complete
    run was found and nothing was recomputed.
    """

    subject: str
    session: str | None
    out_dir: Path
    reference: str
    missing: tuple[str, ...]
    skipped_steps: dict[str, str]
    timings_s: dict[str, float]
    iqm: list[dict] = field(default_factory=list)
    reused: bool = False
    warnings: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------


@contextmanager
def _timed(timings: dict[str, float], step: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[step] = round(timings.get(step, 0.0) + time.perf_counter() - start, 3)


def _bids_root(inputs: SessionInputs) -> Path:
    """The dataset root of a session, from one of its image paths (root/sub-X[/ses-Y]/anat/file)."""
    return dataset_root(next(iter(inputs.images.values())))


def session_dir(out_root: str | Path, inputs: SessionInputs) -> Path:
    """``out_root/sub-X[/ses-Y]/anat``."""
    return PreprocessFiles(out_root).anat_dir(inputs)


def log_path(out_root: str | Path, inputs: SessionInputs) -> Path:
    """The session log JSON; its existence marks a complete session."""
    return PreprocessFiles(out_root).log(inputs)


def _dilate(mask: np.ndarray, mm: float, spacing_mm: float) -> np.ndarray:
    n = int(round(mm / spacing_mm))
    return ndimage.binary_dilation(mask, iterations=n) if n > 0 else mask.copy()


# --------------------------------------------------------------------------------------------
# loading with explicit units
# --------------------------------------------------------------------------------------------


def load_session_images(inputs: SessionInputs) -> tuple[dict[str, Volume], dict[str, dict]]:
    """Load every image of a session; quantitative maps converted to T1 ms and MTR percent.

    Returns ``(volumes, notes)``: role -> :class:`Volume` (data float32, scaled, NaN -> 0) and
    role -> {"declared_units", "found_units", "nonfinite_voxels"}. Raises ``InputError`` naming the
    file for an unreadable, 4D or empty image.
    """
    volumes: dict[str, Volume] = {}
    notes: dict[str, dict] = {}
    for role in ROLES:
        if role not in inputs.images:
            continue
        path = inputs.images[role]
        vol = as_closest_canonical(load_volume(path))  # array order of the storage (RAS, LPS, ...) made irrelevant
        declared = inputs.sidecars.get(role, {}).get("Units")
        note: dict = {"nonfinite_voxels": vol.n_nonfinite}
        if role in ("T1map", "MTRmap"):
            convert = t1_to_ms if role == "T1map" else mtr_to_percent
            try:
                data, found = convert(vol.data, declared=declared)
            except InputError as exc:
                raise InputError(f"{path}: {exc}") from None
            vol = Volume(data=data, affine=vol.affine, path=vol.path, n_nonfinite=vol.n_nonfinite)
            note.update(declared_units=declared, found_units=found, units="ms" if role == "T1map" else "percent")
            if declared is None:
                log.info("%s: no Units in the sidecar, inferred %s", path.name, found)
        volumes[role] = vol
        notes[role] = note
    if not volumes:
        raise InputError(f"{inputs.key}: no usable images")
    return volumes, notes


# --------------------------------------------------------------------------------------------
# co-registration
# --------------------------------------------------------------------------------------------


def coregister(volumes: dict[str, Volume], reference: str, config: PreprocessConfig) -> dict[str, dict]:
    """Rigidly register one representative per geometry group to ``reference``.

    Returns group -> {"matrix": 4x4 (session world -> group world, RAS mm), "representative":
    role, "roles": [...], "metric": Mattes MI or None for the reference's own group}.
    """
    ref = volumes[reference]
    present = {group: [r for r in roles if r in volumes] for group, roles in GEOMETRY_GROUPS.items()}
    present = {group: roles for group, roles in present.items() if roles}
    others = [group for group, roles in present.items() if reference not in roles]

    def register(group: str):
        rep = volumes[present[group][0]]
        return rigid_register(
            ref.data, ref.affine, rep.data, rep.affine,
            dof=6, seed=config.seed, working_spacing_mm=config.registration_spacing_mm,
        )  # fmt: skip

    # independent registrations, side by side (each single-threaded: the results of a serial run)
    regs = dict(zip(others, map_threads(register, others)))
    out: dict[str, dict] = {}
    for group, roles in present.items():
        if group in regs:
            out[group] = {"matrix": regs[group].matrix_ras, "representative": roles[0], "roles": roles, "metric": regs[group].metric}
        else:
            out[group] = {"matrix": np.eye(4), "representative": reference, "roles": roles, "metric": None}
    return out


# --------------------------------------------------------------------------------------------
# user masks from a derivatives folder
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionMask:
    """A user mask (brain or lesion) as found in a derivatives folder: ``data`` (bool) on the grid
    ``affine`` of the acquisition ``group`` (a key of :data:`GEOMETRY_GROUPS`) it was drawn on;
    :func:`preprocess_arrays` pulls it onto the session grid through that group's coregistration."""

    data: np.ndarray
    affine: np.ndarray
    group: str
    path: Path | None = None


def load_session_mask(
    bids_dir: Path,
    derivative: str,
    inputs: SessionInputs,
    kind: Literal["brain", "lesion"],
    volumes: dict[str, Volume],
) -> SessionMask | None:
    """Find a ``kind`` mask of this session in ``derivatives/<derivative>``
    (:meth:`~dawm.bids.derivative_files.MaskFiles.brain_masks` / ``lesion_masks``; the last one found).

    The mask must lie on the grid of one of the session's raw images (same shape and affine), or
    name its acquisition with ``space-<group>`` (T1w, FLAIR, MP2RAGE, MT). Returns a
    :class:`SessionMask`, or None if there is no mask.
    """
    masks = MaskFiles.in_dataset(bids_dir, derivative)
    hits = masks.brain_masks(inputs) if kind == "brain" else masks.lesion_masks(inputs)
    if not hits:
        return None
    path = hits[-1]
    vol = as_closest_canonical(
        load_volume(path, allow_empty=True)
    )  # an empty mask is a valid answer (no lesions); array order as the images'
    mask = vol.data > 0.5
    for role, other in volumes.items():
        if other.shape == vol.shape and np.allclose(other.affine, vol.affine, atol=1e-3):
            return SessionMask(mask, vol.affine, GROUP_OF[role], path)
    space = parse_name(path.name).entities.get("space")
    if space in {GROUP_OF[role] for role in volumes}:
        return SessionMask(mask, vol.affine, space, path)
    raise InputError(
        f"{path}: its grid matches none of the session's images and it names no space-<T1w|FLAIR|MP2RAGE|MT>; "
        "cannot tell which acquisition it was drawn on"
    )


def find_session_mask(
    bids_dir: Path,
    derivative: str,
    inputs: SessionInputs,
    kind: Literal["brain", "lesion"],
    volumes: dict[str, Volume],
    transforms: dict[str, dict],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, Path] | None:
    """:func:`load_session_mask` as ``(mask, affine, matrix, path)``, ``matrix`` the session ->
    mask-world transform of ``transforms`` (:func:`coregister`), or None if there is no mask."""
    found = load_session_mask(bids_dir, derivative, inputs, kind, volumes)
    if found is None:
        return None
    return found.data, found.affine, transforms[found.group]["matrix"], found.path


# --------------------------------------------------------------------------------------------
# MNI registration
# --------------------------------------------------------------------------------------------


def n4_fit_region(brain: np.ndarray, brain_result, template: Template, shape, affine: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """Voxels N4 is fitted on: the MNI white-matter prior (> 0.5, affinely registered) inside the brain,
    or the dilated brain mask (config ``n4.fit_region``; also the fallback without a template registration)."""
    if config.n4.fit_region == "wm_prior" and brain_result.template_to_subject is not None:
        wm = resample(template.wm, template.affine, shape, affine, brain_result.template_to_subject, "linear") > 0.5
        if (wm & brain).sum() > 1000:
            return wm & brain
    return _dilate(brain, config.n4.mask_dilation_mm, config.spacing_mm)


def register_to_mni(
    corrected: dict[str, np.ndarray],
    grid_affine: np.ndarray,
    brain: np.ndarray,
    brain_result,
    template: Template,
    config: PreprocessConfig,
) -> tuple[object, object, str]:
    """Deformable session -> MNI registration. Returns ``(to_mni_points, from_mni_points, how)``.

    ``to_mni_points`` maps session-world points to MNI-world points (pulls MNI images onto the
    session grid; saved as ``from-MNI_to-session``), ``from_mni_points`` the inverse (saved as
    ``from-session_to-MNI``, resamples session images into MNI).
    """
    t1like = next((r for r in _T1_LIKE if r in corrected), None)
    if t1like is None or not config.mni_refine:
        if brain_result.nonlinear is not None:
            why = "no T1-like image" if t1like is None else "mni_refine off"
            return brain_result.nonlinear.forward, brain_result.nonlinear.inverse, f"brain-extraction demons ({why})"
        lin = brain_result.template_to_subject
        if lin is not None and t1like is None:
            return lin.to_sitk(), lin.inverse().to_sitk(), "affine only (no T1-like image)"
        if t1like is None:
            raise InputError("no T1-like image (T1w or UNIT1) and a user brain mask: cannot register to MNI")
    fixed = corrected[t1like] * brain
    fixed_mask = _dilate(brain, 4.0, config.spacing_mm)
    initial: LinearRegistration | None = brain_result.template_to_subject
    if initial is None:
        initial = rigid_register(
            fixed, grid_affine, template.t1, template.affine, fixed_mask=brain,
            moving_mask=template.brain_mask > 0, dof=12, seed=config.seed,
        )  # fmt: skip
    nl = nonlinear_register(
        fixed, grid_affine, np.asarray(template.t1) * template.brain_mask, template.affine,
        initial=initial, fixed_mask=fixed_mask, seed=config.seed,
    )  # fmt: skip
    return nl.forward, nl.inverse, f"demons on {t1like}"


def _mni_candidates(
    corrected, on_grid, reference, grid_affine, brain, brain_result: BrainExtraction, template: Template, config: PreprocessConfig
):
    """The MNI registrations tried in turn until one passes :func:`registration_accepted`, as
    thunks, each returning ``(to_mni, from_mni, how, brain_mask)``:

    1. demons on the T1-like image (:func:`register_to_mni`), the brain mask redrawn through it;
    2. the brain extraction's affine alone (its mask kept);
    3. the brain extracted again from another weighted image of the session (the other modality
       as reference, e.g. the FLAIR when a T1w's contrast misleads), affine only.
    """

    def demons():
        to_mni, from_mni, how = register_to_mni(corrected, grid_affine, brain, brain_result, template, config)
        refined = brain
        if brain_result.method == "template" and "demons" in how and config.brain_refine:
            refined, _ = template_brain_mask(to_mni, brain.shape, grid_affine)
        return to_mni, from_mni, how, refined

    yield demons
    lin = brain_result.template_to_subject
    if lin is not None:
        yield lambda: (lin.to_sitk(), lin.inverse().to_sitk(), "affine only (fallback)", brain)
    if brain_result.method == "user":
        return
    for role in ("FLAIR", "T1w"):
        if role != reference and role in on_grid:

            def other(role=role):
                again = extract_brain(on_grid[role], grid_affine, template=template, seed=config.seed, nonlinear=False)
                tx = again.template_to_subject
                return tx.to_sitk(), tx.inverse().to_sitk(), f"affine from the {role} (fallback)", again.mask

            yield other


def template_correlation(
    corrected: dict[str, np.ndarray], brain: np.ndarray, grid_affine: np.ndarray, template: Template, to_mni
) -> float | None:
    """Pearson correlation, inside ``brain``, of the session's bias-corrected T1-like image with the
    MNI T1 template pulled through ``to_mni``: about 0.8-0.9 for a good registration, about 0.3 for one
    that missed (a displaced brain mask). None without a T1-like image."""
    t1like = next((r for r in _T1_LIKE if r in corrected), None)
    if t1like is None or brain.sum() < 100:
        return None
    pulled = resample(template.t1, template.affine, brain.shape, grid_affine, to_mni, "linear")
    a, b = np.asarray(corrected[t1like], np.float64)[brain], np.asarray(pulled, np.float64)[brain]
    if a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def registration_agreement(
    corrected: dict[str, np.ndarray], brain: np.ndarray, grid_affine: np.ndarray, template: Template, to_mni
) -> dict:
    """How well the MNI registration ``to_mni`` fits a session: ``TemplateCorrelation`` (the T1-like
    image against the template T1, :func:`template_correlation`; None without a T1-like image) and
    ``TissueFit`` (:func:`dawm.preprocess.brain.tissue_fit`, contrast-free, the best over the
    session's weighted images, with ``TissueFitRole``)."""
    priors = [
        resample(p, template.affine, brain.shape, grid_affine, to_mni, "linear")[brain] for p in (template.gm, template.wm, template.csf)
    ]
    fits = {role: prior_fit(np.asarray(img)[brain], priors) for role, img in corrected.items()} if brain.sum() >= 100 else {}
    role = max(fits, key=fits.get) if fits else None
    return {
        "TemplateCorrelation": template_correlation(corrected, brain, grid_affine, template, to_mni),
        "TissueFit": fits[role] if role else None,
        "TissueFitRole": role,
    }


def registration_accepted(agreement: dict, config: PreprocessConfig) -> bool:
    """The guard against a missed MNI registration. With a T1-like image: its correlation with the
    template T1 reaches ``min_template_correlation`` (good ones 0.67-0.9 on real and simulated
    T1w, missed ones 0.35-0.42). Without one (FLAIR-only sessions, which had no guard before): the
    contrast-free tissue fit reaches ``min_tissue_fit`` (a simulated FLAIR 0.41, 0.27 when the same
    registration is moved 5 mm, 0.15 at 10 mm)."""
    r, fit = agreement["TemplateCorrelation"], agreement["TissueFit"]
    if r is not None:
        return bool(r >= config.min_template_correlation)
    return bool(fit is not None and fit >= config.min_tissue_fit)


def brain_coverage(from_mni, template: Template, volumes: dict[str, Volume], transforms: dict[str, dict]) -> dict[str, float]:
    """Share of the expected brain (the template brain mask, every second 2 mm voxel, mapped into the
    session through ``from_mni``: MNI -> session points) inside each image's field of view:
    role -> 0..1. A clinical 2D protocol that cuts the vertex or the cerebellum gives < 1."""
    idx = np.argwhere(template.brain_mask[::2, ::2, ::2] > 0.5) * 2
    mni_pts = idx @ template.affine[:3, :3].T + template.affine[:3, 3]
    session_pts = transform_points(from_mni, mni_pts)
    out: dict[str, float] = {}
    for role, vol in volumes.items():
        matrix = np.asarray(transforms[GROUP_OF[role]]["matrix"], dtype=float)
        world = session_pts @ matrix[:3, :3].T + matrix[:3, 3]
        vox = (world - vol.affine[:3, 3]) @ np.linalg.inv(vol.affine[:3, :3]).T
        inside = np.all((vox >= -0.5) & (vox <= np.array(vol.shape) - 0.5), axis=1)
        out[role] = round(float(inside.mean()), 4)
    return out


def field_of_view_mask(volumes: dict[str, Volume], transforms: dict[str, dict], grid_shape, grid_affine: np.ndarray) -> np.ndarray:
    """Session-grid voxels inside the field of view of every image (bool (X, Y, Z))."""
    inside = np.ones(tuple(grid_shape), bool)
    for role, vol in volumes.items():
        ones = np.ones(vol.shape, np.uint8)
        inside &= (
            resample(ones, vol.affine, grid_shape, grid_affine, interpolation="nearest", transform=transforms[GROUP_OF[role]]["matrix"]) > 0
        )
    return inside


# --------------------------------------------------------------------------------------------
# image-quality metrics
# --------------------------------------------------------------------------------------------


def session_iqms(
    volumes: dict[str, Volume],
    transforms: dict[str, dict],
    grid: tuple[tuple[int, int, int], np.ndarray],
    brain: np.ndarray,
    dseg: np.ndarray | None,
    fields: dict[str, np.ndarray],
) -> tuple[list[dict], dict[str, str]]:
    """IQMs of every weighted image on its own (native) grid; brain mask, tissues and N4 field are
    pulled back from the session grid. Returns (rows, role -> reason for images without IQMs)."""
    shape, affine = grid
    rows: list[dict] = []
    skipped: dict[str, str] = {}
    for role in WEIGHTED_ROLES:
        if role not in volumes:
            continue
        vol = volumes[role]
        back = np.linalg.inv(transforms[GROUP_OF[role]]["matrix"])  # native world -> session world

        def pull(a: np.ndarray, interpolation: str, fill: float = 0.0, vol=vol, back=back) -> np.ndarray:
            return resample(a, affine, vol.shape, vol.affine, interpolation=interpolation, transform=back, fill_value=fill)  # type: ignore[arg-type]

        try:
            metrics = image_quality(
                vol.data,
                brain_mask=pull(brain.astype(np.uint8), "nearest") > 0,
                tissues=pull(dseg, "nearest") if dseg is not None else None,
                bias_field=pull(fields[role], "linear", 1.0) if role in fields else None,
                spacing_mm=voxel_sizes(vol.affine),
            )
        except ValueError as exc:
            skipped[role] = str(exc)
            log.warning("%s: no IQMs (%s)", vol.path, exc)
            continue
        rows.append({"role": role, "file": vol.path.name if vol.path else "", **metrics})
    return rows, skipped


# --------------------------------------------------------------------------------------------
# the session
# --------------------------------------------------------------------------------------------


def _reused(inputs: SessionInputs, out_root: Path) -> SessionResult:
    info = json.loads(log_path(out_root, inputs).read_text())
    iqm_file = PreprocessFiles(out_root).iqm(inputs)
    iqm = pd.read_csv(iqm_file, sep="\t").to_dict("records") if iqm_file.exists() else []
    return SessionResult(
        subject=inputs.subject,
        session=inputs.session,
        out_dir=session_dir(out_root, inputs),
        reference=info["Reference"],
        missing=tuple(info["MissingModalities"]),
        skipped_steps=info["SkippedSteps"],
        timings_s=info["Timings_s"],
        iqm=iqm,
        reused=True,
        warnings=info.get("Warnings", []),
    )


def _forget_previous_run(out_root: Path, inputs: SessionInputs) -> set[str]:
    """Remove the completion marker of an earlier run (so an interrupted re-run is not taken as
    complete) and return the outputs it listed, to delete those the new run does not rewrite."""
    marker = log_path(out_root, inputs)
    if not marker.exists():
        return set()
    try:
        previous = set(json.loads(marker.read_text()).get("Outputs", []))
    except json.JSONDecodeError:
        previous = set()
    marker.unlink()
    return previous


@dataclass
class PreprocessedSession:
    """What :func:`preprocess_arrays` computes for one session, all in memory, on the session grid
    (``grid_shape``, ``grid_affine``: a ``spacing_mm`` isotropic grid over the ``reference`` image).

    ``on_grid``: every image resampled onto the grid (T1map in ms, MTRmap in percent);
    ``corrected``: the weighted images, N4-corrected where ``fields`` (role -> N4 field) has them;
    ``brain`` / ``fov`` bool masks; ``tissues``: the :class:`~dawm.preprocess.tissues.TissueSegmentation`
    (``probabilities``, ``dseg``, ``nawm_mask``, ``lesion_candidates``); ``lesion``: the given lesion
    mask resampled (``lesion_given``) or the candidates; ``coregistration``: group -> {"matrix"
    (session world -> group world), "representative", "roles", "metric"} (:func:`coregister`);
    ``to_mni`` / ``from_mni``: the chosen MNI registration (SimpleITK transforms, session -> MNI points
    and back), ``mni_how`` its name, ``agreement`` its :func:`registration_agreement`, ``attempts``
    every try; ``coverage``: role -> share of the expected brain in its field of view; ``iqm``: one
    metrics row per weighted image; ``skipped``: step -> reason; ``timings_s``: step -> seconds.
    """

    key: str
    reference: str
    grid_shape: tuple[int, int, int]
    grid_affine: np.ndarray
    images: dict[str, Volume]
    on_grid: dict[str, np.ndarray]
    corrected: dict[str, np.ndarray]
    fields: dict[str, np.ndarray]
    brain_extraction: BrainExtraction
    brain: np.ndarray
    fov: np.ndarray
    tissues: TissueSegmentation
    lesion: np.ndarray
    lesion_given: bool
    coregistration: dict[str, dict]
    to_mni: object
    from_mni: object
    mni_how: str
    agreement: dict
    attempts: list[dict]
    coverage: dict[str, float]
    template_name: str
    missing: tuple[str, ...]
    iqm: list[dict] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def brain_volume_ml(self) -> float:
        return float(self.brain.sum() * abs(np.linalg.det(self.grid_affine[:3, :3])) / 1000)


def _as_volume(image: Volume | tuple[np.ndarray, np.ndarray]) -> Volume:
    if isinstance(image, Volume):
        return image
    data, affine = image
    return as_closest_canonical(Volume(np.asarray(data, np.float32), np.asarray(affine, float)))


def _shown(vol: Volume, role: str) -> str:
    """How messages name an image: its file name, or its role for an in-memory array."""
    return vol.path.name if vol.path is not None else role


def preprocess_arrays(
    images: dict[str, Volume | tuple[np.ndarray, np.ndarray]],
    config: PreprocessConfig,
    *,
    key: str = "session",
    brain_mask: SessionMask | None = None,
    lesion_mask: SessionMask | None = None,
    template: Template | None = None,
) -> PreprocessedSession:
    """The preprocess stage on arrays, steps 2-8 of the module docstring, no file read or written
    (but the bundled MNI template when ``template`` is None, :func:`~dawm.image.template.load_template`, cached).

    ``images``: role (:data:`dawm.bids.layout.ROLES`) -> :class:`Volume` or ``(array, affine)``
    (voxel -> RAS mm; T1map in ms, MTRmap in percent, as :func:`load_session_images` leaves them);
    ``brain_mask`` / ``lesion_mask``: user masks on an acquisition's grid (:func:`load_session_mask`);
    ``key`` names the session in messages. Raises ``InputError`` for unusable input.
    """
    volumes = {role: _as_volume(images[role]) for role in ROLES if role in images}
    if not volumes:
        raise InputError(f"{key}: no usable images")
    timings: dict[str, float] = {}
    skipped: dict[str, str] = {}
    missing = tuple(r for r in ROLES if r not in volumes)
    reference = next((r for r in config.reference_roles if r in volumes), None)
    if reference is None:
        raise InputError(f"{key}: none of the reference images ({', '.join(config.reference_roles)}) is present")
    ref_vol = volumes[reference]
    grid_shape, grid_affine = isotropic_grid(ref_vol.shape, ref_vol.affine, config.spacing_mm)

    tpl = template if template is not None else load_template(config.template_resolution_mm)
    identity = np.eye(4)  # the reference's own geometry group
    ref_on_grid = resample(ref_vol.data, ref_vol.affine, grid_shape, grid_affine, transform=identity)
    # Without a T1-like image (FLAIR-only sessions) no demons on T1 follows: the brain extraction's
    # own deformable step (a synthetic template in the image's contrast) is it.
    nonlinear = not any(r in volumes for r in _T1_LIKE)

    def pulled(mask: SessionMask, transforms: dict[str, dict]) -> np.ndarray:
        return (
            resample(
                mask.data.astype(np.uint8),
                mask.affine,
                grid_shape,
                grid_affine,
                interpolation="nearest",
                transform=transforms[mask.group]["matrix"] if mask.group != GROUP_OF[reference] else identity,
            )
            > 0
        )

    def coregistered() -> dict[str, dict]:
        with _timed(timings, "coregister"):
            return coregister(volumes, reference, config)

    def reference_brain(transforms: dict[str, dict] | None = None) -> BrainExtraction:
        with _timed(timings, "brain"):
            initial = pulled(brain_mask, transforms or {}) if brain_mask is not None else None
            try:
                # Affine only: the deformable MNI registration below refines the mask (better than a
                # deformable step against the skull, which shrank masks on simulated heads).
                return extract_brain(ref_on_grid, grid_affine, template=tpl, initial_mask=initial, seed=config.seed, nonlinear=nonlinear)
            except ValueError as exc:
                raise InputError(f"{ref_vol.path or reference}: brain extraction failed ({exc})") from None

    # The reference's brain needs no coregistration: the two run side by side (their registrations
    # single-threaded, so the results are a serial run's), unless a user brain mask drawn on another
    # acquisition must be pulled through it, or the brain extraction's demons run (kept alone).
    if nonlinear or (brain_mask is not None and brain_mask.group != GROUP_OF[reference]):
        transforms = coregistered()
        brain_result = reference_brain(transforms)
    else:
        transforms, brain_result = map_threads(lambda run: run(), [coregistered, reference_brain])
    brain = brain_result.mask
    with _timed(timings, "resample"):
        on_grid = {
            role: ref_on_grid if role == reference else resample(v.data, v.affine, grid_shape, grid_affine,
                                   transform=transforms[GROUP_OF[role]]["matrix"])
            for role, v in volumes.items()
        }  # fmt: skip

    corrected: dict[str, np.ndarray] = {}
    fields: dict[str, np.ndarray] = {}
    with _timed(timings, "bias"):
        fit = n4_fit_region(brain, brain_result, tpl, grid_shape, grid_affine, config)
        for role in WEIGHTED_ROLES:
            if role not in on_grid:
                continue
            if not config.n4.enabled or role not in config.n4.roles:
                corrected[role] = on_grid[role]
                continue
            bc = correct_bias(
                on_grid[role],
                grid_affine,
                mask=fit,
                shrink_factor=config.n4.shrink_factor,
                iterations=config.n4.iterations,
                spline_distance_mm=config.n4.spline_distance_mm,
            )
            corrected[role], fields[role] = bc.corrected, bc.field
        if not config.n4.enabled:
            skipped["bias"] = "disabled in the config"

    warnings: list[str] = []
    if brain_result.method == "skull-stripped input":
        warnings.append(
            f"{_shown(ref_vol, reference)}: already skull-stripped "
            f"({brain_result.info['foreground_ml']:.0f} ml of non-zero voxels): its own brain is the mask"
        )
    if brain_result.info.get("mni_grid"):
        log.info(
            "%s: %s is on the %s grid: the MNI registration starts from the identity",
            key,
            _shown(ref_vol, reference),
            brain_result.info["mni_grid"],
        )
    with _timed(timings, "mni"):
        attempts: list[dict] = []
        chosen = None
        for candidate in _mni_candidates(corrected, on_grid, reference, grid_affine, brain, brain_result, tpl, config):
            to_mni, from_mni, mni_how, cand_brain = candidate()
            agreement = registration_agreement(corrected, cand_brain, grid_affine, tpl, to_mni)
            attempts.append({"Method": mni_how, **agreement})
            if registration_accepted(agreement, config):
                chosen = (to_mni, from_mni, mni_how, cand_brain, agreement)
                break
            log.info("%s: MNI registration '%s' doubtful (%s), trying the next", key, mni_how, agreement)
        if chosen is None:
            tried = "; ".join(
                f"{a['Method']}: T1 correlation {a['TemplateCorrelation'] if a['TemplateCorrelation'] is None else round(a['TemplateCorrelation'], 2)}, "
                f"tissue fit {a['TissueFit']:.2f}"
                for a in attempts
            )
            raise InputError(
                f"{key}: the MNI registration failed: no attempt reaches a T1-like template correlation of "
                f"{config.min_template_correlation} (or, without a T1-like image, a tissue fit of {config.min_tissue_fit}) ({tried}); the brain mask "
                f"and tissues would be wrong (check the images' orientation and field of view)"
            )
        to_mni, from_mni, mni_how, brain, agreement = chosen
        if len(attempts) > 1:
            warnings.append(f"MNI registration fallback used: {mni_how} (after {', '.join(a['Method'] for a in attempts[:-1])})")
        coverage = brain_coverage(from_mni, tpl, volumes, transforms)
        for role, share in coverage.items():
            if share < config.min_brain_coverage:
                warnings.append(
                    f"{_shown(volumes[role], role)}: partial field of view, {100 * share:.0f} % of the expected brain "
                    f"inside it (volumes of this session cover less brain than a full one)"
                )
        fov = field_of_view_mask(volumes, transforms, grid_shape, grid_affine)
    for text in warnings:
        log.warning("%s: %s", key, text)

    with _timed(timings, "segment"):
        priors = TissuePriors(*(resample(p, tpl.affine, grid_shape, grid_affine, to_mni, "linear") for p in (tpl.csf, tpl.gm, tpl.wm)))
        lesion_given = None
        if lesion_mask is not None:
            lesion_given = pulled(lesion_mask, transforms)
        elif config.lesion_mask_derivative:
            skipped["lesion_mask"] = f"no lesion mask in derivatives/{config.lesion_mask_derivative}"
        channels = {r: corrected[r] for r in config.segmentation_channels if r in corrected}
        if not channels:
            raise InputError(f"{key}: none of the segmentation channels ({', '.join(config.segmentation_channels)}) is present")
        seg = segment_tissues(channels, priors, brain, lesion_mask=lesion_given)
        lesion = lesion_given if lesion_given is not None else seg.lesion_candidates

    iqm_rows: list[dict] = []
    if config.iqm:
        with _timed(timings, "iqm"):
            iqm_rows, no_iqm = session_iqms(volumes, transforms, (grid_shape, grid_affine), brain, seg.dseg, fields)
        for role, why in no_iqm.items():
            skipped[f"iqm:{role}"] = why
    else:
        skipped["iqm"] = "disabled in the config"

    return PreprocessedSession(
        key=key,
        reference=reference,
        grid_shape=tuple(grid_shape),
        grid_affine=grid_affine,
        images=volumes,
        on_grid=on_grid,
        corrected=corrected,
        fields=fields,
        brain_extraction=brain_result,
        brain=brain,
        fov=fov,
        tissues=seg,
        lesion=lesion,
        lesion_given=lesion_given is not None,
        coregistration=transforms,
        to_mni=to_mni,
        from_mni=from_mni,
        mni_how=mni_how,
        agreement=agreement,
        attempts=attempts,
        coverage=coverage,
        template_name=tpl.name,
        missing=missing,
        iqm=iqm_rows,
        skipped=skipped,
        timings_s=timings,
        warnings=warnings,
    )


def load_session(
    inputs: SessionInputs, config: PreprocessConfig, bids_dir: Path
) -> tuple[dict[str, Volume], dict[str, dict], dict[str, SessionMask | None]]:
    """The load half of :func:`preprocess_session`: the session's images (:func:`load_session_images`),
    their notes, and the user masks ``{"brain": ..., "lesion": ...}`` of the configured derivatives
    (:func:`load_session_mask`; None where not configured or absent)."""
    volumes, notes = load_session_images(inputs)
    masks: dict[str, SessionMask | None] = {}
    for kind, derivative in (("brain", config.brain_mask_derivative), ("lesion", config.lesion_mask_derivative)):
        masks[kind] = load_session_mask(bids_dir, derivative, inputs, kind, volumes) if derivative else None  # type: ignore[arg-type]
    return volumes, notes, masks


def write_preprocessed(
    done: PreprocessedSession,
    inputs: SessionInputs,
    out_root: str | Path,
    config: PreprocessConfig,
    *,
    notes: dict[str, dict],
    lesion_path: Path | None = None,
    stale: set[str] = frozenset(),  # type: ignore[assignment]
    timings: dict[str, float] | None = None,
) -> SessionResult:
    """The write half of :func:`preprocess_session`: every output of ``done`` (images, masks,
    tissues, transforms: the MNI ones as ITK ``.h5``, IQM table, QC figure), the outputs of an earlier
    run listed in ``stale`` that this one does not rewrite removed, and the session log written last."""
    out_root = Path(out_root)
    files = PreprocessFiles(out_root)
    timings = dict(timings or {})
    timings.update(done.timings_s)
    skipped = dict(done.skipped)
    grid_affine, corrected, on_grid, seg = done.grid_affine, done.corrected, done.on_grid, done.tissues
    brain_result = done.brain_extraction
    outputs: list[Path] = []
    with _timed(timings, "write"):
        for role in PREPROC_OUTPUTS:
            if role in corrected:
                outputs.append(save_volume(corrected[role].astype(np.float32), grid_affine, files.image(inputs, role)))
                write_json(
                    files.sidecar(files.image(inputs, role)),
                    {
                        "Sources": [str(inputs.images[role].name)],
                        "BiasCorrected": role in done.fields,
                        "SkullStrippedInput": brain_result.method == "skull-stripped input",
                    },
                )
        for role, unit in (("T1map", "ms"), ("MTRmap", "percent")):
            if role in on_grid:
                outputs.append(save_volume(on_grid[role].astype(np.float32), grid_affine, files.image(inputs, role)))
                write_json(
                    files.sidecar(files.image(inputs, role)),
                    {"Units": unit, "Sources": [inputs.images[role].name], "UnitsFoundInInput": notes[role]["found_units"]},
                )
        outputs.append(save_volume(done.brain, grid_affine, files.brain_mask(inputs), dtype=np.uint8))
        outputs.append(save_volume(done.fov, grid_affine, files.fov_mask(inputs), dtype=np.uint8))
        for label in ("CSF", "GM", "WM"):
            outputs.append(save_volume(seg.probabilities[label].astype(np.float32), grid_affine, files.tissue_probseg(inputs, label)))
        outputs.append(save_volume(seg.dseg, grid_affine, files.tissue_dseg(inputs), dtype=np.uint8))
        outputs.append(save_volume(seg.nawm_mask, grid_affine, files.nawm_mask(inputs), dtype=np.uint8))
        outputs.append(save_volume(done.lesion, grid_affine, files.lesion_mask(inputs), dtype=np.uint8))
        write_json(
            files.sidecar(files.lesion_mask(inputs)),
            {
                "Description": "given lesion mask, resampled" if done.lesion_given else "data-driven lesion candidates of segment_tissues",
                "Sources": [str(lesion_path)] if done.lesion_given else [],
            },
        )
        for group, info in done.coregistration.items():
            outputs.append(
                write_json(
                    files.acquisition_xfm(inputs, group),
                    {
                        "Convention": "pull: maps session-space world RAS mm to this acquisition's world RAS mm "
                        "(resample the acquisition onto the session grid with it)",
                        "MatrixRAS": info["matrix"],
                        "InverseMatrixRAS": np.linalg.inv(info["matrix"]),
                        "RegisteredImage": info["representative"],
                        "AppliesTo": info["roles"],
                        "MattesMI": info["metric"],
                    },
                )
            )
        outputs.append(save_transform(done.from_mni, files.to_template_xfm(inputs, done.template_name)))
        outputs.append(save_transform(done.to_mni, files.from_template_xfm(inputs, done.template_name)))
        iqm_table = pd.DataFrame([{"participant_id": inputs.participant_id, "session_id": inputs.session_id, **r} for r in done.iqm])
        if config.iqm:
            outputs.append(write_tsv(files.iqm(inputs), iqm_table))

    if config.qc_figure:
        with _timed(timings, "qc"):
            shown = {r: corrected[r] for r in PREPROC_OUTPUTS if r in corrected}
            shown.update({r: on_grid[r] for r in ("T1map", "MTRmap") if r in on_grid})
            outputs.append(qc_figure(shown, grid_affine, done.brain, seg.dseg, files.qc_figure(inputs, done.reference), title=inputs.key))
    else:
        skipped["qc"] = "disabled in the config"

    for rel in stale - {str(p.relative_to(out_root)) for p in outputs}:
        for path in (out_root / rel, out_root / rel.replace(".nii.gz", ".json")):
            path.unlink(missing_ok=True)
    for role in done.missing:
        log.debug("%s: no %s image, skipped", inputs.key, role)  # expected on clinical data: not for the console
    write_json(
        log_path(out_root, inputs),
        {
            "Subject": inputs.subject,
            "Session": inputs.session,
            "Reference": done.reference,
            "SessionGrid": {"shape": list(done.grid_shape), "affine": grid_affine, "spacing_mm": config.spacing_mm},
            "Inputs": {r: str(p) for r, p in inputs.images.items()},
            "MissingModalities": list(done.missing),
            "SkippedSteps": skipped,
            "ImageNotes": notes,
            "Registration": {g: {k: v for k, v in i.items() if k != "matrix"} for g, i in done.coregistration.items()},
            "BrainExtraction": brain_result.method,
            "BrainExtractionInfo": brain_result.info,
            "SkullStrippedInput": brain_result.method == "skull-stripped input",
            "InputOnMNIGrid": brain_result.info.get("mni_grid"),
            "MNIRegistration": done.mni_how,
            "TemplateCorrelation": done.agreement["TemplateCorrelation"],
            "TissueFit": done.agreement["TissueFit"],
            "RegistrationAttempts": done.attempts,
            "BrainCoverage": done.coverage,
            "BrainVolume_ml": done.brain_volume_ml,
            "Warnings": done.warnings,
            "LesionMask": "given" if done.lesion_given else "candidates",
            "Timings_s": timings,
            "Outputs": sorted(str(p.relative_to(out_root)) for p in outputs),
        },
    )
    return SessionResult(
        inputs.subject,
        inputs.session,
        files.anat_dir(inputs),
        done.reference,
        done.missing,
        skipped,
        timings,
        done.iqm,
        warnings=done.warnings,
    )


def preprocess_session(
    inputs: SessionInputs,
    config: PreprocessConfig,
    out_root: str | Path,
    *,
    bids_dir: str | Path | None = None,
    force: bool = False,
) -> SessionResult:
    """Pre-process one session into ``out_root`` (BIDS derivatives); see the module docstring:
    :func:`load_session`, :func:`preprocess_arrays`, :func:`write_preprocessed`.

    A session whose log JSON exists is not recomputed unless ``force``. Raises ``InputError``
    (naming the file) for unusable input; nothing of the session's log is written then.
    """
    out_root = Path(out_root)
    if log_path(out_root, inputs).exists() and not force:
        log.info("%s: already pre-processed, skipped (force to redo)", inputs.key)
        return _reused(inputs, out_root)
    bids_dir = Path(bids_dir) if bids_dir is not None else _bids_root(inputs)
    stale = _forget_previous_run(out_root, inputs)
    timings: dict[str, float] = {}
    with _timed(timings, "load"):
        volumes, notes, masks = load_session(inputs, config, bids_dir)
    done = preprocess_arrays(volumes, config, key=inputs.key, brain_mask=masks["brain"], lesion_mask=masks["lesion"])
    lesion = masks["lesion"]
    return write_preprocessed(
        done, inputs, out_root, config, notes=notes, lesion_path=lesion.path if lesion is not None else None, stale=stale, timings=timings
    )


# --------------------------------------------------------------------------------------------
# the dataset
# --------------------------------------------------------------------------------------------


def preprocess_dataset(
    bids_dir: str | Path,
    *,
    output: str | Path | None = None,
    config: PreprocessConfig | None = None,
    participant_label: list[str] | None = None,
    jobs: int = 1,
    backend: Backend = "local",
    address: str | None = None,
    force: bool = False,
) -> list[Outcome]:
    """Pre-process every session of ``bids_dir`` into ``output`` (default
    ``bids_dir/derivatives/dawm-preprocess``). A failing session is reported in its
    :class:`Outcome` and the others finish. Writes ``dataset_description.json``, the config,
    ``dseg.tsv``, ``group_iqm.tsv`` (every session found under ``output``) and ``provenance.json``.
    """
    bids_dir = Path(bids_dir)
    config = config or PreprocessConfig()
    sessions = discover_sessions(bids_dir, participant_label)
    if not sessions:
        raise InputError(f"{bids_dir}: no session with anatomical images found")
    files = PreprocessFiles(output) if output is not None else PreprocessFiles.in_dataset(bids_dir)
    out_root = files.root
    init_derivative(
        out_root,
        name="dawm preprocess",
        description="co-registration, N4, brain extraction, MNI registration, tissue segmentation, IQMs",
        source=bids_dir,
    )
    config.save(files.config)
    write_dseg_tsv(files.tissue_lut, TISSUE_LABELS)
    fn = functools.partial(preprocess_session, config=config, out_root=out_root, bids_dir=bids_dir, force=force)
    outcomes = run_all(
        fn, sessions, names=[s.key for s in sessions], jobs=jobs, backend=backend, address=address, description="preprocessing"
    )
    tables = [pd.read_csv(p, sep="\t") for p in files.iqm_tables()]
    tables = [t for t in tables if not t.empty]
    if tables:
        write_tsv(files.group_iqm, pd.concat(tables, ignore_index=True))
    record = provenance("preprocess", config)
    record["sessions"] = {o.name: ("ok" if o.ok else f"failed: {o.error}") for o in outcomes}
    record["warnings"] = {o.name: o.result.warnings for o in outcomes if o.ok and o.result.warnings}
    write_json(files.provenance, record)
    return outcomes
