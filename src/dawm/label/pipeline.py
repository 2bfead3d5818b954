"""The ``dawm label`` stage: DAWM, lesion and location labels of every pre-processed session.

Per session (:func:`label_session`), from ``derivatives/dawm-preprocess``:

1. **load** (:func:`prepare_session`): T1 map (ms) and MTR map (percent; both checked with
   :mod:`dawm.image.units` from their sidecars' ``Units``), WM probability, dseg, brain mask, lesion
   mask (given or candidates from preprocess; :func:`~dawm.label.rules.automatic_lesion_mask` from
   FLAIR + T1 when there is none, per ``auto_lesion``), and the MNI coordinate of every voxel (the
   ``from-MNI152NLin2009cSym_to-session`` transform pulls the template grid's coordinates onto the
   session grid);
2. **locations**: :func:`~dawm.label.locations.location_classes` and the regions (location x hemisphere);
3. **smooth** T1/MTR inside pure WM (normalised convolution, ``smoothing_fwhm_mm``);
4. **reference**: the controls' norm of the session's scanner (:class:`ControlsNormativeModel`,
   leave-one-subject-out for controls), or the subject's own NAWM (:class:`SelfNormativeModel`) with
   ``reference=self`` or when its scanner has no (other) control -- logged;
5. **rule**: :mod:`dawm.label.rules` gives the binary DAWM of the ``desc-dawm_dseg``;
6. **probability** (:func:`probability_map`, :mod:`dawm.label.probability`): the DAWM probability of
   every eligible voxel, ``1 - lfdr`` of the rule's score (``min(z_T1, -z_MTR)`` for ``both``) under
   the two-group model (Efron 2004): the null's centre and SD from the low side of the reference
   NAWM's scores, its shape from the standardised scores of the *other* healthy controls of the
   session's normative group (:func:`control_null_shapes`, computed once per run with z maps made as
   when each control is labelled; the other groups' controls when the session's group has none, logged;
   Gaussian with a mirrored-tail guard without any other control), ``pi0`` and
   the probabilities under the zero assumption (no DAWM within ``probability_zero_sd`` null SD above
   the centre), the mixture density a kernel estimate of the eligible voxels' scores; above the zone
   only voxels in clusters of ``probability_min_cluster_mm3`` count, in the session and in the
   controls' null alike (:func:`~dawm.label.probability.counted_voxels`); P is non-decreasing in the
   score, 0 outside the eligible WM, in lesions and lesion-like voxels. Its sum
   times the voxel volume is the expected DAWM volume ``dawm_expected_ml`` (next to the binary
   ``dawm_ml``);
7. **write** the dseg, the ``label-DAWM_probseg`` (float32 0-1, with a sidecar describing the
   method and the fitted null), z maps, location map, volumes and the session log (written last: it
   marks the session complete; a log without ``dawm_expected_ml``, from an older dawm, is redone).

Load, compute and write are separate: :func:`load_label_inputs` (files -> :class:`LabelInputs`),
the array core :func:`prepare_arrays` (steps 1-3 on arrays) and :func:`label_arrays` (steps 4-6: a
:class:`LabelledSession`), no file I/O in either, and :func:`write_labelled` (step 7).

:func:`label_dataset` fits the controls' model first (``group`` of ``participants.tsv`` equal to
``control_group``), saves it as ``normative_model.json`` (+ ``.npz``), labels every session with
:func:`dawm.parallel.run_all`, and writes the group ``volumes.tsv``.
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from dawm.bids.derivative_files import TEMPLATE_SPACE, LabelFiles, PreprocessFiles
from dawm.bids.derivatives import init_derivative, write_dseg_tsv, write_json, write_tsv
from dawm.bids.layout import (
    RawFiles,
    SessionInputs,
    discover_sessions,
    participant_labels,
    subject_label,
)
from dawm.errors import InputError
from dawm.image.io import load_volume, save_volume
from dawm.image.resample import voxel_sizes
from dawm.image.template import mni_coordinates, mni_deep_gm_prior, mni_wm_prior
from dawm.image.units import mtr_to_percent, t1_to_ms
from dawm.label.config import LabelConfig
from dawm.label.locations import hemisphere, location_classes, pv_band, regions
from dawm.label.normative import (
    ControlsNormativeModel,
    Reference,
    SelfNormativeModel,
    SessionMaps,
)
from dawm.label.probability import (
    ProbabilityFit,
    counted_voxels,
    dawm_probability,
    dawm_score,
    empirical_null,
    standardised_histogram,
)
from dawm.label.rules import (
    abnormal_mask,
    automatic_lesion_mask,
    eligible_wm,
    grow_from_seeds,
    label_dawm,
    lesion_like,
    within_mm,
)
from dawm.label.zscores import masked_smooth
from dawm.labels import DAWM_LABELS, LOCATION_LABELS
from dawm.parallel import Backend, Outcome, run_all
from dawm.provenance import provenance

log = logging.getLogger(__name__)

STAGE = LabelFiles.NAME
PREPROCESS = PreprocessFiles.NAME
MNI = TEMPLATE_SPACE
_MAP_FILES = {"T1": ("T1map", t1_to_ms), "MTR": ("MTRmap", mtr_to_percent)}


# --------------------------------------------------------------------------------------------
# sessions and their metadata
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionInfo:
    """A session to label: its raw ``inputs``, ``group`` / ``age`` from participants.tsv, the
    ``scanner`` (participants.tsv, else Manufacturer + model from the sidecars) and ``field_t``."""

    inputs: SessionInputs
    group: str | None
    age: float | None
    scanner: str
    field_t: float | None

    @property
    def key(self) -> str:
        return self.inputs.key

    def norm_key(self, group_by: str) -> str:
        """The key of the normative group this session belongs to."""
        if group_by == "field_strength":
            return f"{self.field_t:g}T" if self.field_t else "unknownT"
        return self.scanner


def participants_by_subject(bids_dir: Path) -> dict[str, dict]:
    path = RawFiles(bids_dir).participants
    if not path.exists():
        return {}
    table = pd.read_csv(path, sep="\t", na_values=["n/a"], dtype={"participant_id": str})
    return {subject_label(str(r["participant_id"])): r for r in table.to_dict("records")}


def session_row(bids_dir: Path, inputs: SessionInputs) -> dict:
    """The session's row of ``sub-X/sub-X_sessions.tsv`` ({} when absent)."""
    path = RawFiles(bids_dir).sessions_table(inputs.subject)
    if not inputs.session or not path.exists():
        return {}
    table = pd.read_csv(path, sep="\t", na_values=["n/a"], dtype={"session_id": str})
    rows = table[table.session_id == inputs.session_id].to_dict("records")
    return rows[0] if rows else {}


def session_infos(bids_dir: str | Path, participant_label: list[str] | None = None) -> list[SessionInfo]:
    """Every session of ``bids_dir`` with its participant and scanner metadata (age and scanner of
    ``sub-X_sessions.tsv`` override those of participants.tsv)."""
    bids_dir = Path(bids_dir)
    parts = participants_by_subject(bids_dir)
    infos = []
    for inputs in discover_sessions(bids_dir, participant_label):
        row = {**parts.get(inputs.subject, {}), **{k: v for k, v in session_row(bids_dir, inputs).items() if k in ("age", "scanner")}}
        sidecar = next((inputs.sidecars[r] for r in ("T1map", "UNIT1", "T1w", "MTRmap", "FLAIR") if inputs.sidecars.get(r)), {})
        field_t = sidecar.get("MagneticFieldStrength")
        scanner = row.get("scanner")
        if not isinstance(scanner, str) or not scanner:
            scanner = (
                "".join(
                    c
                    for c in f"{sidecar.get('Manufacturer', 'unknown')}{sidecar.get('ManufacturersModelName', '')}{field_t or ''}T"
                    if c.isalnum()
                )
                or "unknown"
            )
        age = row.get("age")
        group = row.get("group")
        infos.append(
            SessionInfo(
                inputs,
                group if isinstance(group, str) else None,
                float(age) if age is not None and np.isfinite(age) else None,
                scanner,
                float(field_t) if field_t else None,
            )
        )
    return infos


def preprocessed(pre_root: Path, inputs: SessionInputs) -> bool:
    """Whether the session's preprocess log (its completion marker) exists."""
    return PreprocessFiles(pre_root).is_complete(inputs)


def check_preprocessed(pre_root: Path, inputs: SessionInputs) -> None:
    """``InputError`` unless the session is pre-processed."""
    if not preprocessed(pre_root, inputs):
        raise InputError(f"{inputs.key}: no complete dawm preprocess outputs in {pre_root} (run dawm preprocess first)")


# --------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------


@dataclass
class PreparedSession:
    """A session ready to label: the model inputs ``maps`` and the label inputs on the session grid
    (``dseg`` 1 CSF 2 GM 3 WM, ``wm_prob`` 0..1, ``lesion`` bool, ``location`` uint8)."""

    maps: SessionMaps
    dseg: np.ndarray
    wm_prob: np.ndarray
    lesion: np.ndarray
    location: np.ndarray
    lesion_source: str
    notes: dict = field(default_factory=dict)
    wm_prior: np.ndarray | None = None  # MNI152 WM prior on the session grid (None: no MNI transform)
    near_deep_gm: np.ndarray | None = None  # bool, within deep_gm_margin_mm of the MNI deep grey nuclei (None: off)


@dataclass
class LabelInputs:
    """What :func:`load_label_inputs` reads of one pre-processed session, the arguments of
    :func:`prepare_arrays`: ``maps`` modality ("T1" ms, "MTR" percent) -> session-grid array,
    ``dseg`` (1 CSF 2 GM 3 WM), ``wm_prob``, ``brain`` (bool), ``affine``, ``lesion`` (bool, None
    when preprocess left no lesion mask) and its ``lesion_source``, the ``flair`` (only read when the
    automatic lesion mask needs it), ``to_session`` (the MNI -> session transform, None without one)
    and ``notes`` (units found, missing maps)."""

    maps: dict[str, np.ndarray]
    dseg: np.ndarray
    wm_prob: np.ndarray
    brain: np.ndarray
    affine: np.ndarray
    lesion: np.ndarray | None = None
    lesion_source: str = "given"
    flair: np.ndarray | None = None
    to_session: object | None = None
    notes: dict = field(default_factory=dict)


def _wants_auto_lesion(config: LabelConfig, has_lesion: bool) -> bool:
    return config.auto_lesion == "add" or (config.auto_lesion == "when_absent" and not has_lesion)


def load_label_inputs(info: SessionInfo, pre_root: str | Path, config: LabelConfig) -> LabelInputs:
    """The load half of :func:`prepare_session`: the session's ``derivatives/dawm-preprocess`` files
    as arrays, T1 and MTR maps checked against their sidecars' ``Units`` (:mod:`dawm.image.units`)."""
    pre_root = Path(pre_root)
    pre = PreprocessFiles(pre_root)
    inputs = info.inputs
    check_preprocessed(pre_root, inputs)
    brain_vol = load_volume(pre.brain_mask(inputs))
    dseg = np.rint(load_volume(pre.tissue_dseg(inputs)).data).astype(np.uint8)
    wm_prob = load_volume(pre.tissue_probseg(inputs, "WM")).data
    notes: dict = {}
    raw: dict[str, np.ndarray] = {}
    for mod, (role, convert) in _MAP_FILES.items():
        path = pre.image(inputs, role)
        if not path.exists():
            notes[f"{mod}_missing"] = True
            continue
        declared = pre.read_sidecar(path).get("Units")
        data, unit = convert(load_volume(path).data, declared=declared, mask=dseg == 3)
        raw[mod], notes[f"{mod}_units_found"] = data, unit
    if not raw:
        raise InputError(f"{inputs.key}: neither a T1 map nor an MTR map in {pre_root} -- DAWM needs quantitative maps")
    lesion_path = pre.lesion_mask(inputs)
    lesion, source = None, "none"
    if lesion_path.exists():
        lesion = load_volume(lesion_path, allow_empty=True).data > 0.5
        desc = pre.read_sidecar(lesion_path).get("Description", "")
        source = "given" if desc.startswith("given") else "preprocess candidates"
    flair = None
    if _wants_auto_lesion(config, lesion is not None):
        flair_path = pre.image(inputs, "FLAIR")
        flair = load_volume(flair_path).data if flair_path.exists() else None
    xfm = pre.from_template_xfm(inputs, MNI)
    to_session = None
    if xfm.exists():
        from dawm.image.registration import load_transform

        to_session = load_transform(xfm)
    return LabelInputs(raw, dseg, wm_prob, brain_vol.data > 0.5, brain_vol.affine, lesion, source, flair, to_session, notes)


def prepare_arrays(
    maps: dict[str, np.ndarray],
    dseg: np.ndarray,
    wm_prob: np.ndarray,
    brain: np.ndarray,
    affine: np.ndarray,
    config: LabelConfig,
    *,
    lesion: np.ndarray | None = None,
    lesion_source: str = "given",
    flair: np.ndarray | None = None,
    to_session: object | None = None,
    notes: dict | None = None,
    key: str = "session",
    subject: str | None = None,
    age: float | None = None,
    norm_key: str = "all",
) -> PreparedSession:
    """The array core of :func:`prepare_session` (steps 1-3 of the module docstring past the loading),
    no file I/O: session-grid maps (``maps``: "T1" ms and/or "MTR" percent), tissues (``dseg`` 1 CSF
    2 GM 3 WM, ``wm_prob``), ``brain`` and ``affine`` in; ``lesion`` (None: none given, the automatic
    mask from ``flair`` and T1 per ``config.auto_lesion``); ``to_session``: the MNI -> session
    transform (SimpleITK; None: no infratentorial class, one hemisphere, no WM-prior restriction);
    ``key`` / ``subject`` / ``age`` / ``norm_key`` identify the session for the normative models."""
    affine = np.asarray(affine, float)
    shape = tuple(np.shape(dseg))
    spacing = voxel_sizes(affine)
    brain = np.asarray(brain, bool)
    dseg = np.asarray(dseg, np.uint8)
    notes = dict(notes or {})
    raw = {m: a for m, a in maps.items() if a is not None}
    if not raw:
        raise InputError(f"{key}: neither a T1 map nor an MTR map -- DAWM needs quantitative maps")
    wm = dseg == 3
    has_lesion = lesion is not None
    lesion = np.asarray(lesion, bool).copy() if has_lesion else np.zeros(shape, bool)
    source = lesion_source if has_lesion else "none"
    if _wants_auto_lesion(config, has_lesion):
        auto = automatic_lesion_mask(
            flair, raw.get("T1"), wm & brain, spacing, flair_z=config.auto_lesion_flair_z, t1_rise=config.auto_lesion_t1_rise
        )
        lesion = lesion | auto
        source = f"{source} + automatic" if source != "none" else "automatic (FLAIR and T1)"
    lesion &= brain

    mni_xyz = wm_prior = near_deep_gm = None
    if to_session is not None:
        mni_xyz = mni_coordinates(to_session, shape, affine)
        wm_prior = mni_wm_prior(to_session, shape, affine) if config.wm_prior_min > 0 else None
        if config.deep_gm_margin_mm > 0:
            near_deep_gm = within_mm(mni_deep_gm_prior(to_session, shape, affine) >= 0.5, config.deep_gm_margin_mm, spacing)
        if np.isnan(mni_xyz[:, brain]).mean() > 0.05:
            log.warning(
                "%s: the MNI transform leaves the template grid for %.0f %% of the brain", key, 100 * np.isnan(mni_xyz[:, brain]).mean()
            )
        mni_xyz = np.nan_to_num(mni_xyz, nan=-1e4)
    else:
        notes["mni"] = "no MNI transform: no infratentorial class, one hemisphere, no WM-prior restriction"
    wm_all = (wm | lesion) & brain
    location = location_classes(dseg, brain, spacing, wm=wm_all, mni_xyz=mni_xyz, affine=affine)
    region = regions(location, hemisphere(mni_xyz, shape), pv_band(dseg, spacing))

    pure = (
        eligible_wm(
            wm_prob,
            dseg,
            lesion,
            spacing,
            purity=config.wm_purity,
            lesion_margin_mm=0.0,
            pv_margin_mm=config.pv_margin_mm,
            wm_prior=wm_prior,
            prior_min=config.wm_prior_min,
            exclude=near_deep_gm,
        )
        & brain
    )
    smoothed = {m: np.where(pure, masked_smooth(a, pure, config.smoothing_fwhm_mm, spacing), a).astype(np.float32) for m, a in raw.items()}
    reference = pure & ~within_mm(lesion, config.reference_lesion_margin_mm, spacing) & (region >= 0)
    sm = SessionMaps(
        key=key,
        subject=subject if subject is not None else key,
        affine=affine,
        maps=smoothed,
        raw=raw,
        reference=reference,
        wm=wm_all,
        region=region,
        mni_xyz=mni_xyz,
        age=age,
        norm_key=norm_key,
    )
    return PreparedSession(sm, dseg, wm_prob, lesion, location, source, notes, wm_prior, near_deep_gm)


def prepare_session(info: SessionInfo, pre_root: str | Path, config: LabelConfig) -> PreparedSession:
    """Load one pre-processed session (:func:`load_label_inputs`) and build its model inputs
    (:func:`prepare_arrays`; see the module docstring)."""
    loaded = load_label_inputs(info, pre_root, config)
    return prepare_arrays(
        loaded.maps,
        loaded.dseg,
        loaded.wm_prob,
        loaded.brain,
        loaded.affine,
        config,
        lesion=loaded.lesion,
        lesion_source=loaded.lesion_source,
        flair=loaded.flair,
        to_session=loaded.to_session,
        notes=loaded.notes,
        key=info.key,
        subject=info.inputs.subject,
        age=info.age,
        norm_key=info.norm_key(config.group_by),
    )


# --------------------------------------------------------------------------------------------
# labelling
# --------------------------------------------------------------------------------------------


def reference_for(
    prepared: PreparedSession, config: LabelConfig, model: ControlsNormativeModel | None, is_control: bool = False
) -> tuple[Reference, dict]:
    """The session's reference (controls when configured and available, else self) and a JSON-ready
    record of it (the self model's statistics, or the controls group used)."""
    maps = prepared.maps
    if config.reference == "controls" and model is not None:
        use = model.without(maps.subject) if is_control else model
        if use.has(maps.norm_key):
            ref = use.transform(maps)
            return ref, {"kind": "controls", "group": maps.norm_key, "leave_one_out": is_control}
        why = "no other control" if is_control else "no control"
        log.warning("%s: %s scanned on %s: using the subject's own NAWM as reference", maps.key, why, maps.norm_key)
    self_model = SelfNormativeModel(config).fit(maps)
    return self_model.transform(maps), self_model.to_dict()


def eligible_of(prepared: PreparedSession, config: LabelConfig) -> np.ndarray:
    """The voxels of a prepared session that may be DAWM (:func:`~dawm.label.rules.eligible_wm`)."""
    return eligible_wm(
        prepared.wm_prob,
        prepared.dseg,
        prepared.lesion,
        prepared.maps.spacing_mm,
        purity=config.wm_purity,
        lesion_margin_mm=config.lesion_margin_mm,
        pv_margin_mm=config.pv_margin_mm,
        wm_prior=prepared.wm_prior,
        prior_min=config.wm_prior_min,
        exclude=prepared.near_deep_gm,
    )


def apply_rule(prepared: PreparedSession, ref: Reference, config: LabelConfig, *, eligible: np.ndarray | None = None) -> np.ndarray:
    """The DAWM dseg (0 normal, 1 lesion, 2 DAWM) of a prepared session under ``ref`` and ``config``
    (``eligible``: :func:`eligible_of`, precomputed when several rules are tried)."""
    spacing = prepared.maps.spacing_mm
    eligible = eligible_of(prepared, config) if eligible is None else eligible
    z_t1, z_mtr = ref.z.get("T1"), ref.z.get("MTR")
    abnormal = abnormal_mask(z_t1, z_mtr, config.rule, z_threshold=config.z_threshold, chi2_p=config.chi2_p, rho=ref.rho)
    like = lesion_like(prepared.maps.raw.get("T1"), ref.mean.get("T1"), config.max_t1_rise)
    grow = config.grow_threshold
    if grow is not None and config.rule != "chi2" and grow < config.z_threshold:
        allowed = eligible & ~prepared.lesion & (~like if like is not None else True)
        abnormal = grow_from_seeds(abnormal, abnormal_mask(z_t1, z_mtr, config.rule, z_threshold=grow), allowed)
    return label_dawm(
        eligible,
        abnormal,
        prepared.lesion,
        spacing,
        lesion_like_mask=like,
        min_cluster_mm3=config.min_cluster_mm3,
        closing_mm=config.closing_mm,
    )


def _score_inputs(prepared: PreparedSession, ref: Reference, config: LabelConfig) -> tuple[np.ndarray, np.ndarray]:
    """The DAWM score map (:func:`~dawm.label.probability.dawm_score` under the configured rule) and the
    voxels that are never DAWM (lesions and lesion-like voxels)."""
    like = lesion_like(prepared.maps.raw.get("T1"), ref.mean.get("T1"), config.max_t1_rise)
    exclude = prepared.lesion | like if like is not None else prepared.lesion
    return dawm_score(ref.z.get("T1"), ref.z.get("MTR"), config.rule), exclude


@dataclass(frozen=True)
class NullShape:
    """The null shape a session's DAWM probability is calibrated on (:func:`null_shape_for`): the pooled
    :func:`control_score_histogram` ``counts`` of ``n_controls`` control sessions, and their ``source``:
    ``controls`` (the session's normative group) or ``controls of other groups``."""

    counts: np.ndarray
    n_controls: int
    source: str = "controls"


def probability_map(
    prepared: PreparedSession,
    ref: Reference,
    config: LabelConfig,
    *,
    eligible: np.ndarray | None = None,
    null_shape: NullShape | None = None,
) -> tuple[np.ndarray, ProbabilityFit]:
    """The DAWM probability map (float32 0-1, session grid) of a prepared session under ``ref`` and its
    fit (:func:`dawm.label.probability.dawm_probability`: eligible WM as :func:`eligible_of`, the null's
    centre and SD from the reference NAWM, its shape from ``null_shape`` (:func:`null_shape_for`), or
    Gaussian when None; the cluster support of ``config.probability_min_cluster_mm3``; lesions and
    lesion-like voxels excluded)."""
    eligible = eligible_of(prepared, config) if eligible is None else eligible
    score, exclude = _score_inputs(prepared, ref, config)
    return dawm_probability(
        score,
        eligible,
        prepared.maps.reference & ~exclude,
        exclude=exclude,
        null_shape=None if null_shape is None else null_shape.counts,
        n_controls=0 if null_shape is None else null_shape.n_controls,
        null_shape_name="controls" if null_shape is None else null_shape.source,
        zero_sd=config.probability_zero_sd,
        min_cluster_voxels=probability_cluster_voxels(config, prepared.maps.spacing_mm),
    )


def probability_cluster_voxels(config: LabelConfig, spacing_mm) -> int:
    """``config.probability_min_cluster_mm3`` in voxels of ``spacing_mm`` (rounded up; 0 when off)."""
    mm3 = float(config.probability_min_cluster_mm3)
    return int(np.ceil(mm3 / float(np.prod(spacing_mm)) - 1e-9)) if mm3 > 0 else 0


def control_score_histogram(
    info: SessionInfo, *, config: LabelConfig, pre_root: Path, model: ControlsNormativeModel | None
) -> tuple[str, str, np.ndarray]:
    """A control session's contribution to its normative group's null shape: ``(norm_key, subject,
    counts)``, the :func:`~dawm.label.probability.standardised_histogram` of its eligible voxels'
    scores (above the central zone only those of the cluster support,
    :func:`~dawm.label.probability.counted_voxels`), z maps made exactly as when it is labelled
    (leave-one-out controls reference, or self)."""
    prepared = prepare_session(info, pre_root, config)
    ref, _ = reference_for(prepared, config, model, is_control=True)
    score, exclude = _score_inputs(prepared, ref, config)
    null = empirical_null(score[prepared.maps.reference & ~exclude], zero_sd=config.probability_zero_sd)
    candidates = eligible_of(prepared, config) & ~exclude & np.isfinite(score)
    counted = counted_voxels(
        score,
        candidates,
        null,
        zero_sd=config.probability_zero_sd,
        min_cluster_voxels=probability_cluster_voxels(config, prepared.maps.spacing_mm),
    )
    counts = standardised_histogram(score[counted], null)
    return prepared.maps.norm_key, info.inputs.subject, counts


def control_null_shapes(
    infos: list[SessionInfo],
    pre_root: Path,
    config: LabelConfig,
    model: ControlsNormativeModel | None,
    *,
    jobs: int = 1,
    backend: Backend = "local",
    address: str | None = None,
) -> dict[str, list[tuple[str, np.ndarray]]]:
    """Per normative group, the ``(subject, counts)`` of every control session of ``config.control_group``
    (:func:`control_score_histogram`; failures are logged and left out)."""
    controls = [i for i in infos if i.group == config.control_group]
    fn = functools.partial(control_score_histogram, config=config, pre_root=pre_root, model=model)
    out: dict[str, list[tuple[str, np.ndarray]]] = {}
    for o in run_all(
        fn,
        controls,
        names=[c.key for c in controls],
        jobs=jobs,
        backend=backend,
        address=address,
        description="control score distributions",
    ):
        if o.ok:
            key, subject, counts = o.result
            out.setdefault(key, []).append((subject, counts))
    return out


def null_shape_for(maps: SessionMaps, control_nulls: dict[str, list[tuple[str, np.ndarray]]] | None) -> NullShape | None:
    """The pooled null-shape counts of the controls of the session's normative group other than its
    subject (source ``controls``); when that group has none, those of the other groups' controls
    (other subjects; ``controls of other groups``): the shapes are of standardised scores, made on the
    same kind of grid with the same smoothing, and a measured shape of another scanner calibrates the
    tail better than a Gaussian (on the 1.5 mm cohort of one control per scanner the controls'
    expected DAWM fell from 3.8 to 1.0 ml per session); None (Gaussian) without any other control."""
    groups = control_nulls or {}

    def others_of(keys) -> list[np.ndarray]:
        return [c for g in keys for subject, c in groups.get(g, []) if subject != maps.subject]

    for source, keys in (("controls", [maps.norm_key]), ("controls of other groups", [g for g in groups if g != maps.norm_key])):
        found = others_of(keys)
        if found:
            return NullShape(np.sum(found, axis=0), len(found), source)
    return None


def volumes_table(dseg: np.ndarray, location: np.ndarray, wm: np.ndarray, voxel_ml: float, prob: np.ndarray | None = None) -> pd.DataFrame:
    """Per location class (and ``all``): DAWM, lesion and WM (incl. lesions) volume in ml and the
    DAWM / lesion share of WM in percent; with the DAWM probability map ``prob`` also the expected
    DAWM volume ``dawm_expected_ml`` (sum of the probabilities x ``voxel_ml``)."""
    rows = []
    for k, name in [(None, "all")] + [(k, n) for k, n in LOCATION_LABELS.items() if k]:
        sel = np.ones(dseg.shape, bool) if k is None else location == k
        wm_ml = float((wm & sel).sum() * voxel_ml)
        d_ml, l_ml = float(((dseg == 2) & sel).sum() * voxel_ml), float(((dseg == 1) & sel).sum() * voxel_ml)
        row = {"location": name, "dawm_ml": d_ml}
        if prob is not None:
            row["dawm_expected_ml"] = float(prob[sel].sum(dtype=np.float64) * voxel_ml)
        row.update(
            {
                "lesion_ml": l_ml,
                "wm_ml": wm_ml,
                "dawm_pct_wm": 100 * d_ml / wm_ml if wm_ml else np.nan,
                "lesion_pct_wm": 100 * l_ml / wm_ml if wm_ml else np.nan,
            }
        )
        rows.append(row)
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class LabelResult:
    """What :func:`label_session` did: the reference used (``how``), volumes (ml; ``dawm_expected_ml``
    the sum of the DAWM probability map), ``reused``."""

    key: str
    reference: str
    dawm_ml: float
    lesion_ml: float
    wm_ml: float
    reused: bool = False
    dawm_expected_ml: float = float("nan")


def label_log_path(out_root: Path, inputs: SessionInputs) -> Path:
    """The session log JSON; its existence marks a complete session."""
    return LabelFiles(out_root).log(inputs)


def label_complete(out_root: Path, inputs: SessionInfo | SessionInputs, config: LabelConfig | None = None) -> bool:
    """Whether the session's log exists and holds the expected DAWM volume (a log of a dawm without
    the probability map does not count: the session is labelled again) and, with ``config``, was
    written under that same configuration (``Config`` of the log; a log without one, or with other
    settings, e.g. the defaults of an older dawm, does not count)."""
    inputs = inputs.inputs if isinstance(inputs, SessionInfo) else inputs
    path = label_log_path(Path(out_root), inputs)
    if not path.exists():
        return False
    done = json.loads(path.read_text())
    if "dawm_expected_ml" not in done.get("Volumes", {}):
        return False
    return config is None or done.get("Config") == config.model_dump(mode="json")


@dataclass
class LabelledSession:
    """What :func:`label_arrays` computes for one prepared session, on the session grid: the
    ``reference`` (its z maps ``reference.z``: modality -> z) and a JSON-ready ``reference_record``,
    the ``eligible`` WM (bool), the ``dseg`` (0 normal, 1 lesion, 2 DAWM), the DAWM ``probability``
    (float32 0-1) and its ``probability_fit``, and the ``volumes`` table (:func:`volumes_table`)."""

    prepared: PreparedSession
    reference: Reference
    reference_record: dict
    eligible: np.ndarray
    dseg: np.ndarray
    probability: np.ndarray
    probability_fit: ProbabilityFit
    volumes: pd.DataFrame

    @property
    def z(self) -> dict[str, np.ndarray]:
        return self.reference.z

    @property
    def location(self) -> np.ndarray:
        return self.prepared.location

    @property
    def voxel_ml(self) -> float:
        return float(np.prod(self.prepared.maps.spacing_mm)) / 1000.0

    @property
    def totals(self) -> dict[str, float]:
        """The ``all`` row of ``volumes``: dawm_ml, dawm_expected_ml, lesion_ml, wm_ml, dawm_pct_wm, lesion_pct_wm."""
        total = self.volumes.iloc[0]
        return {k: float(total[k]) for k in ("dawm_ml", "dawm_expected_ml", "lesion_ml", "wm_ml", "dawm_pct_wm", "lesion_pct_wm")}


def label_arrays(
    prepared: PreparedSession,
    config: LabelConfig,
    *,
    model: ControlsNormativeModel | None = None,
    is_control: bool = False,
    null_shape: NullShape | None = None,
) -> LabelledSession:
    """The array core of :func:`label_session` (steps 4-6 of the module docstring), no file I/O: a
    :func:`prepare_arrays` session, the controls' ``model`` (None, or ``config.reference == "self"``:
    the subject's own NAWM; ``is_control``: leave its subject out) and the null shape
    (:func:`null_shape_for`; None: Gaussian) in, a :class:`LabelledSession` out."""
    ref, ref_record = reference_for(prepared, config, model, is_control=is_control)
    eligible = eligible_of(prepared, config)
    dseg = apply_rule(prepared, ref, config, eligible=eligible)
    prob, prob_fit = probability_map(prepared, ref, config, eligible=eligible, null_shape=null_shape)
    voxel_ml = float(np.prod(prepared.maps.spacing_mm)) / 1000.0
    table = volumes_table(dseg, prepared.location, prepared.maps.wm, voxel_ml, prob)
    return LabelledSession(prepared, ref, ref_record, eligible, dseg, prob, prob_fit, table)


def write_labelled(done: LabelledSession, info: SessionInfo, out_root: str | Path, config: LabelConfig) -> LabelResult:
    """The write half of :func:`label_session`: dseg, location map, DAWM probability (+ sidecar), z maps
    (+ sidecars), the volumes table, and the session log last (it marks the session complete)."""
    out_root, inputs = Path(out_root), info.inputs
    prepared, ref, dseg, prob = done.prepared, done.reference, done.dseg, done.probability
    affine, voxel_ml = prepared.maps.affine, done.voxel_ml
    files = LabelFiles(out_root)
    outputs = [
        save_volume(dseg, affine, files.dseg(inputs), dtype=np.uint8),
        save_volume(prepared.location, affine, files.location_dseg(inputs), dtype=np.uint8),
        save_volume(prob, affine, files.dawm_probseg(inputs), dtype=np.float32),
    ]
    write_json(files.sidecar(files.dawm_probseg(inputs)), _probseg_sidecar(done.probability_fit, ref, config, voxel_ml))
    for mod, z in ref.z.items():
        outputs.append(save_volume(z, affine, files.zmap(inputs, mod)))
        write_json(
            files.sidecar(files.zmap(inputs, mod)),
            {
                "Description": f"{mod} z-score against the {ref.how} reference: (smoothed value - expected) / SD, "
                f"recentred by {ref.shift[mod]:+.3f} on the subject's reference NAWM; "
                + ("DAWM is high T1 z" if mod == "T1" else "DAWM is low (negative) MTR z"),
                "Units": "z",
                "SmoothingFWHMmm": config.smoothing_fwhm_mm,
            },
        )
    table = done.volumes.copy()
    table.insert(0, "session_id", inputs.session_id)
    table.insert(0, "participant_id", inputs.participant_id)
    outputs.append(write_tsv(files.volumes(inputs), table))
    volumes = done.totals
    write_json(
        label_log_path(out_root, inputs),
        {
            "Subject": inputs.subject,
            "Session": inputs.session,
            "Group": info.group,
            "Age": info.age,
            "Scanner": info.scanner,
            "FieldStrength": info.field_t,
            "NormativeGroup": prepared.maps.norm_key,
            "Reference": {"how": ref.how, "recentering_shift_z": ref.shift, "abnormality_correlation": ref.rho, **done.reference_record},
            "Rule": {"rule": config.rule, "z_threshold": config.z_threshold, "chi2_p": config.chi2_p},
            "Config": config.model_dump(mode="json"),
            "Probability": done.probability_fit.to_dict(),
            "LesionMask": prepared.lesion_source,
            "Notes": prepared.notes,
            "Volumes": volumes,
            "Outputs": sorted(str(p.relative_to(out_root)) for p in outputs),
        },
    )
    return LabelResult(
        info.key, ref.how, volumes["dawm_ml"], volumes["lesion_ml"], volumes["wm_ml"], dawm_expected_ml=volumes["dawm_expected_ml"]
    )


def label_session(
    info: SessionInfo,
    *,
    config: LabelConfig,
    pre_root: str | Path,
    out_root: str | Path,
    model: ControlsNormativeModel | None = None,
    force: bool = False,
    control_nulls: dict[str, list[tuple[str, np.ndarray]]] | None = None,
) -> LabelResult:
    """Label one session into ``out_root`` (see the module docstring): :func:`prepare_session` (load +
    :func:`prepare_arrays`), :func:`label_arrays`, :func:`write_labelled`; skipped when its log exists
    and was written under the same ``config`` (:func:`label_complete`) unless ``force``.
    ``control_nulls``: :func:`control_null_shapes` (None: Gaussian null shape)."""
    out_root, inputs = Path(out_root), info.inputs
    marker = label_log_path(out_root, inputs)
    if not force and label_complete(out_root, inputs, config):
        done = json.loads(marker.read_text())
        return LabelResult(
            info.key,
            done["Reference"]["how"],
            reused=True,
            **{k: done["Volumes"][k] for k in ("dawm_ml", "lesion_ml", "wm_ml", "dawm_expected_ml")},
        )
    marker.unlink(missing_ok=True)
    prepared = prepare_session(info, pre_root, config)
    null_shape = null_shape_for(prepared.maps, control_nulls)
    if null_shape is not None and null_shape.source != "controls":
        # one console line per normative group (the console shows each distinct message once); the
        # session and the count go to the log file and the probseg sidecar (NullShape, NullControls)
        log.warning(
            "no other control scanned on %s: the DAWM probability's null shape of its sessions comes from controls of other groups",
            prepared.maps.norm_key,
        )
        log.info("%s: DAWM probability null shape from %d control session(s) of other groups", prepared.maps.key, null_shape.n_controls)
    labelled = label_arrays(prepared, config, model=model, is_control=info.group == config.control_group, null_shape=null_shape)
    return write_labelled(labelled, info, out_root, config)


def _probseg_sidecar(fit: ProbabilityFit, ref: Reference, config: LabelConfig, voxel_ml: float) -> dict:
    """The JSON sidecar of the ``label-DAWM_probseg``: what the probability is and the fitted null."""
    both = {"T1", "MTR"} <= set(ref.z)
    score = (
        {"both": "min(z_T1, -z_MTR)", "either": "max(z_T1, -z_MTR)", "chi2": "(z_T1 - z_MTR) / sqrt(2)"}.get(config.rule) if both else None
    )
    score = score or ("z_T1" if "T1" in ref.z and (config.rule != "mtr" or not both) else "-z_MTR")
    shape = {
        "controls": f"the pooled standardised scores of {fit.n_controls} other healthy control session(s) of the same normative group",
        "controls of other groups": f"the pooled standardised scores of {fit.n_controls} healthy control session(s) of other "
        "normative groups (the session's group has no other control)",
    }.get(fit.null_shape, "Gaussian, its high tail at least the mirrored low tail of the session's own scores")
    return {
        "Description": "Probability that the voxel is DAWM: 1 - local false discovery rate (Efron 2004) of the score "
        f"s = {score} (z maps against the {ref.how} reference) among the eligible WM voxels "
        "(pure WM away from lesions, lesion-like voxels excluded; 0 elsewhere). Null: centre and SD from the "
        f"low side of the reference NAWM's scores, shape {shape}; mixture density by a Gaussian kernel; "
        f"P = 0 up to {fit.zero_sd:g} null SD above the centre (zero assumption) and non-decreasing in s"
        + (
            f"; above that, only voxels in 26-connected clusters of at least {fit.min_cluster_voxels} such voxels count "
            "(in the session and in the controls' null alike), the others get P = 0. "
            if fit.min_cluster_voxels > 1
            else ". "
        )
        + "The sum of P times the voxel volume is the expected DAWM volume (dawm_expected_ml). "
        "See dawm.label.probability.",
        "Units": "probability",
        "Method": "local false discovery rate (two-group model)",
        "Score": score,
        "NullShape": fit.null_shape,
        "NullControls": fit.n_controls,
        "NullCentre": fit.null.centre,
        "NullSD": fit.null.sd,
        "ReferencePi0": fit.null.pi0,
        "ReferenceVoxels": fit.null.n,
        "Pi0": fit.pi0,
        "EligibleVoxels": fit.n_eligible,
        "ZeroZoneSD": fit.zero_sd,
        "KernelBandwidthSD": fit.bandwidth_sd,
        "MinClusterVoxels": fit.min_cluster_voxels,
        "ExpectedDAWMVoxels": fit.expected_voxels,
        "ExpectedDAWMml": fit.expected_voxels * voxel_ml,
    }


def _control_summary(info: SessionInfo, *, config: LabelConfig, pre_root: Path, model: ControlsNormativeModel):
    return model.summarise(prepare_session(info, pre_root, config).maps)


def fit_controls(
    infos: list[SessionInfo], pre_root: Path, config: LabelConfig, *, jobs: int = 1, backend: Backend = "local", address: str | None = None
) -> ControlsNormativeModel:
    """Fit the controls' model on every session of ``config.control_group`` (failures are logged and left out)."""
    from dawm.image.template import load_template

    tpl = load_template(2)
    model = ControlsNormativeModel(config, mni_shape=tpl.t1.shape, mni_affine=np.array(tpl.affine))
    controls = [i for i in infos if i.group == config.control_group]
    fn = functools.partial(_control_summary, config=config, pre_root=pre_root, model=model)
    outcomes = run_all(
        fn, controls, names=[c.key for c in controls], jobs=jobs, backend=backend, address=address, description="fitting control norms"
    )
    return model.refit([o.result for o in outcomes if o.ok])


def label_dataset(
    bids_dir: str | Path,
    *,
    output: str | Path | None = None,
    config: LabelConfig | None = None,
    participant_label: list[str] | None = None,
    preprocess_dir: str | Path | None = None,
    jobs: int = 1,
    backend: Backend = "local",
    address: str | None = None,
    force: bool = False,
) -> list[Outcome]:
    """Label every (selected) session of ``bids_dir`` into ``output`` (default
    ``bids_dir/derivatives/dawm-label``) from ``preprocess_dir`` (default
    ``bids_dir/derivatives/dawm-preprocess``). The controls' model uses every control of the dataset,
    whatever ``participant_label``. Returns one :class:`Outcome` per session (result: :class:`LabelResult`)."""
    bids_dir = Path(bids_dir)
    config = config or LabelConfig()
    pre_root = Path(preprocess_dir) if preprocess_dir is not None else PreprocessFiles.in_dataset(bids_dir).root
    if not pre_root.is_dir():
        raise InputError(f"{pre_root}: no dawm preprocess outputs (run dawm preprocess first)")
    all_infos = session_infos(bids_dir)
    wanted = participant_labels(participant_label)
    if wanted is not None:
        session_infos(bids_dir, participant_label)  # InputError for unknown participants
    infos = [i for i in all_infos if wanted is None or i.inputs.subject in wanted]
    if not infos:
        raise InputError(f"{bids_dir}: no session found")
    if not any(preprocessed(pre_root, i.inputs) for i in infos):
        raise InputError(f"{pre_root}: none of the sessions is pre-processed (run dawm preprocess first)")
    files = LabelFiles(output) if output is not None else LabelFiles.in_dataset(bids_dir)
    out_root = files.root
    init_derivative(
        out_root,
        name="dawm label",
        description="T1/MTR z-scores against a normative reference; DAWM, lesion and location labels",
        source=bids_dir,
    )
    config.save(files.config)
    write_dseg_tsv(files.dawm_lut, DAWM_LABELS)
    write_dseg_tsv(files.location_lut, LOCATION_LABELS)

    model = control_nulls = None
    pending = force or not all(label_complete(out_root, i.inputs, config) for i in infos)
    ready = [i for i in all_infos if preprocessed(pre_root, i.inputs)]
    if config.reference == "controls" and pending:
        model = fit_controls(ready, pre_root, config, jobs=jobs, backend=backend, address=address)
        if not model.groups_:
            log.warning("no control (group %s) could be used: every session uses its own NAWM as reference", config.control_group)
        model.save(files.normative_model)
    if pending:
        control_nulls = control_null_shapes(ready, pre_root, config, model, jobs=jobs, backend=backend, address=address)
    fn = functools.partial(
        label_session, config=config, pre_root=pre_root, out_root=out_root, model=model, force=force, control_nulls=control_nulls
    )
    outcomes = run_all(fn, infos, names=[i.key for i in infos], jobs=jobs, backend=backend, address=address, description="labelling")
    tables = [pd.read_csv(p, sep="\t") for p in files.volume_tables()]
    if tables:
        write_tsv(files.volumes_table, _wide_volumes(pd.concat(tables, ignore_index=True), all_infos, out_root))
    record = provenance("label", config)
    record["sessions"] = {o.name: ("ok" if o.ok else f"failed: {o.error}") for o in outcomes}
    write_json(files.provenance, record)
    return outcomes


def _wide_volumes(long: pd.DataFrame, infos: list[SessionInfo], out_root: Path) -> pd.DataFrame:
    """One row per session: totals (``dawm_ml`` binary, ``dawm_expected_ml`` from the probability map, ...), then
    ``dawm_<location>_ml`` / ``lesion_<location>_ml``, plus group, scanner, reference."""
    meta = {(i.inputs.participant_id, i.inputs.session_id): i for i in infos}
    rows = []
    for (pid, sid), g in long.groupby(["participant_id", "session_id"], sort=True):
        info = meta.get((pid, sid))
        total = g[g.location == "all"].iloc[0]
        row = {
            "participant_id": pid,
            "session_id": sid,
            "group": info.group if info else None,
            "scanner": info.scanner if info else None,
            "age": info.age if info else None,
        }
        if info is not None and label_log_path(out_root, info.inputs).exists():
            row["reference"] = json.loads(label_log_path(out_root, info.inputs).read_text())["Reference"]["how"]
        row.update({k: total.get(k, np.nan) for k in ("dawm_ml", "dawm_expected_ml", "lesion_ml", "wm_ml", "dawm_pct_wm", "lesion_pct_wm")})
        for r in g[g.location != "all"].itertuples():
            row[f"dawm_{r.location}_ml"] = r.dawm_ml
            row[f"lesion_{r.location}_ml"] = r.lesion_ml
        rows.append(row)
    return pd.DataFrame(rows)
