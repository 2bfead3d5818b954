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
   when each control is labelled; Gaussian with a mirrored-tail guard when there is none), ``pi0`` and
   the probabilities under the zero assumption (no DAWM within ``probability_zero_sd`` null SD above
   the centre), the mixture density a kernel estimate of the eligible voxels' scores; P is
   non-decreasing in the score, 0 outside the eligible WM, in lesions and lesion-like voxels. Its sum
   times the voxel volume is the expected DAWM volume ``dawm_expected_ml`` (next to the binary
   ``dawm_ml``);
7. **write** the dseg, the ``label-DAWM_probseg`` (float32 0-1, with a sidecar describing the
   method and the fitted null), z maps, location map, volumes and the session log (written last: it
   marks the session complete; a log without ``dawm_expected_ml``, from an older dawm, is redone).

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

from dawm.bids.derivatives import init_derivative, write_dseg_tsv, write_json, write_tsv
from dawm.bids.layout import SessionInputs, discover_sessions
from dawm.errors import InputError
from dawm.image.io import load_volume, save_volume
from dawm.image.units import mtr_to_percent, t1_to_ms
from dawm.label.config import LabelConfig
from dawm.label.locations import LOCATION_LABELS, hemisphere, location_classes, pv_band, regions
from dawm.label.normative import ControlsNormativeModel, Reference, SelfNormativeModel, SessionMaps
from dawm.label.probability import ProbabilityFit, dawm_probability, dawm_score, empirical_null, standardised_histogram
from dawm.label.rules import DAWM_LABELS, abnormal_mask, automatic_lesion_mask, eligible_wm, grow_from_seeds, label_dawm, lesion_like, within_mm
from dawm.label.zscores import masked_smooth
from dawm.parallel import Backend, Outcome, run_all
from dawm.provenance import provenance

log = logging.getLogger(__name__)

STAGE = "dawm-label"
PREPROCESS = "dawm-preprocess"
MNI = "MNI152NLin2009cSym"
MODEL_FILE = "normative_model.json"
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
    path = bids_dir / "participants.tsv"
    if not path.exists():
        return {}
    table = pd.read_csv(path, sep="\t", na_values=["n/a"], dtype={"participant_id": str})
    return {str(r["participant_id"]).removeprefix("sub-"): r for r in table.to_dict("records")}


def session_row(bids_dir: Path, inputs: SessionInputs) -> dict:
    """The session's row of ``sub-X/sub-X_sessions.tsv`` ({} when absent)."""
    path = bids_dir / f"sub-{inputs.subject}" / f"sub-{inputs.subject}_sessions.tsv"
    if not inputs.session or not path.exists():
        return {}
    table = pd.read_csv(path, sep="\t", na_values=["n/a"], dtype={"session_id": str})
    rows = table[table.session_id == f"ses-{inputs.session}"].to_dict("records")
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
            scanner = "".join(c for c in f"{sidecar.get('Manufacturer', 'unknown')}{sidecar.get('ManufacturersModelName', '')}"
                              f"{field_t or ''}T" if c.isalnum()) or "unknown"
        age = row.get("age")
        group = row.get("group")
        infos.append(SessionInfo(inputs, group if isinstance(group, str) else None,
                                 float(age) if age is not None and np.isfinite(age) else None, scanner,
                                 float(field_t) if field_t else None))
    return infos


def _file(pre_root: Path, inputs: SessionInputs, **entities) -> Path:
    return pre_root / inputs.base().with_(**entities).relpath


def preprocessed(pre_root: Path, inputs: SessionInputs) -> bool:
    """Whether the session's preprocess log (its completion marker) exists."""
    return _file(pre_root, inputs, desc="preproc", suffix="log", extension=".json").exists()


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


def mni_coordinates(transform, shape: tuple[int, int, int], affine: np.ndarray) -> np.ndarray:
    """(3, X, Y, Z) float32 MNI mm of every voxel of the grid (shape, affine), through the loaded
    ``from-MNI_to-session`` transform (which pulls MNI-grid images onto the session grid): the
    coordinate maps of the 2 mm template grid, linearly interpolated. NaN outside the template grid."""
    from dawm.preprocess.registration import warp
    from dawm.preprocess.template import load_template

    tpl = load_template(2)
    ijk = np.indices(tpl.t1.shape, dtype=np.float32).reshape(3, -1)
    world = (tpl.affine[:3, :3] @ ijk + tpl.affine[:3, 3:4]).reshape((3, *tpl.t1.shape))
    inside = warp(np.ones(tpl.t1.shape, np.float32), tpl.affine, shape, affine, transform, "linear", 0.0) > 0.999
    out = np.stack([warp(w, tpl.affine, shape, affine, transform, "linear", 0.0) for w in world])
    return np.where(inside, out, np.nan).astype(np.float32)


def mni_wm_prior(transform, shape: tuple[int, int, int], affine: np.ndarray) -> np.ndarray:
    """The MNI152 WM prior (0..1, float32) pulled onto the grid (shape, affine) through the loaded
    ``from-MNI_to-session`` transform (0 outside the template)."""
    from dawm.preprocess.registration import warp
    from dawm.preprocess.template import load_template

    tpl = load_template(2)
    return warp(tpl.wm, tpl.affine, shape, affine, transform, "linear", 0.0).astype(np.float32)


def prepare_session(info: SessionInfo, pre_root: str | Path, config: LabelConfig) -> PreparedSession:
    """Load one pre-processed session and build its model inputs (see the module docstring)."""
    pre_root = Path(pre_root)
    inputs = info.inputs
    check_preprocessed(pre_root, inputs)
    brain_vol = load_volume(_file(pre_root, inputs, space="session", desc="brain", suffix="mask"))
    shape, affine = brain_vol.shape, brain_vol.affine
    spacing = brain_vol.spacing_mm
    brain = brain_vol.data > 0.5
    dseg = np.rint(load_volume(_file(pre_root, inputs, space="session", suffix="dseg")).data).astype(np.uint8)
    wm_prob = load_volume(_file(pre_root, inputs, space="session", label="WM", suffix="probseg")).data
    notes: dict = {}
    raw: dict[str, np.ndarray] = {}
    for mod, (suffix, convert) in _MAP_FILES.items():
        path = _file(pre_root, inputs, space="session", suffix=suffix)
        if not path.exists():
            notes[f"{mod}_missing"] = True
            continue
        sidecar = path.with_name(path.name.replace(".nii.gz", ".json"))
        declared = json.loads(sidecar.read_text()).get("Units") if sidecar.exists() else None
        data, unit = convert(load_volume(path).data, declared=declared, mask=dseg == 3)
        raw[mod], notes[f"{mod}_units_found"] = data, unit
    if not raw:
        raise InputError(f"{inputs.key}: neither a T1 map nor an MTR map in {pre_root} -- DAWM needs quantitative maps")

    wm = dseg == 3
    lesion_path = _file(pre_root, inputs, space="session", label="lesion", suffix="mask")
    lesion = np.zeros(shape, bool)
    source = "none"
    if lesion_path.exists():
        lesion = load_volume(lesion_path, allow_empty=True).data > 0.5
        desc_path = lesion_path.with_name(lesion_path.name.replace(".nii.gz", ".json"))
        desc = json.loads(desc_path.read_text()).get("Description", "") if desc_path.exists() else ""
        source = "given" if desc.startswith("given") else "preprocess candidates"
    if config.auto_lesion == "add" or (config.auto_lesion == "when_absent" and not lesion_path.exists()):
        flair_path = _file(pre_root, inputs, space="session", desc="preproc", suffix="FLAIR")
        flair = load_volume(flair_path).data if flair_path.exists() else None
        auto = automatic_lesion_mask(flair, raw.get("T1"), wm & brain, spacing, flair_z=config.auto_lesion_flair_z,
                                     t1_rise=config.auto_lesion_t1_rise)
        lesion = lesion | auto
        source = f"{source} + automatic" if source != "none" else "automatic (FLAIR and T1)"
    lesion &= brain

    xfm = _file(pre_root, inputs, from_=MNI, to="session", mode="image", suffix="xfm", extension=".h5")
    mni_xyz = wm_prior = None
    if xfm.exists():
        from dawm.preprocess.registration import load_transform

        to_session = load_transform(xfm)
        mni_xyz = mni_coordinates(to_session, shape, affine)
        wm_prior = mni_wm_prior(to_session, shape, affine) if config.wm_prior_min > 0 else None
        if np.isnan(mni_xyz[:, brain]).mean() > 0.05:
            log.warning("%s: the MNI transform leaves the template grid for %.0f %% of the brain", inputs.key,
                        100 * np.isnan(mni_xyz[:, brain]).mean())
        mni_xyz = np.nan_to_num(mni_xyz, nan=-1e4)
    else:
        notes["mni"] = "no MNI transform: no infratentorial class, one hemisphere, no WM-prior restriction"
    wm_all = (wm | lesion) & brain
    location = location_classes(dseg, brain, spacing, wm=wm_all, mni_xyz=mni_xyz, affine=affine)
    region = regions(location, hemisphere(mni_xyz, shape), pv_band(dseg, spacing))

    pure = eligible_wm(wm_prob, dseg, lesion, spacing, purity=config.wm_purity, lesion_margin_mm=0.0,
                       pv_margin_mm=config.pv_margin_mm, wm_prior=wm_prior, prior_min=config.wm_prior_min) & brain
    maps = {m: np.where(pure, masked_smooth(a, pure, config.smoothing_fwhm_mm, spacing), a).astype(np.float32) for m, a in raw.items()}
    reference = pure & ~within_mm(lesion, config.reference_lesion_margin_mm, spacing) & (region >= 0)
    sm = SessionMaps(key=inputs.key, subject=inputs.subject, affine=affine, maps=maps, raw=raw, reference=reference, wm=wm_all,
                     region=region, mni_xyz=mni_xyz, age=info.age, norm_key=info.norm_key(config.group_by))
    return PreparedSession(sm, dseg, wm_prob, lesion, location, source, notes, wm_prior)


# --------------------------------------------------------------------------------------------
# labelling
# --------------------------------------------------------------------------------------------


def reference_for(prepared: PreparedSession, config: LabelConfig, model: ControlsNormativeModel | None,
                  is_control: bool = False) -> tuple[Reference, dict]:
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
    return eligible_wm(prepared.wm_prob, prepared.dseg, prepared.lesion, prepared.maps.spacing_mm, purity=config.wm_purity,
                       lesion_margin_mm=config.lesion_margin_mm, pv_margin_mm=config.pv_margin_mm,
                       wm_prior=prepared.wm_prior, prior_min=config.wm_prior_min)


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
    return label_dawm(eligible, abnormal, prepared.lesion, spacing, lesion_like_mask=like,
                      min_cluster_mm3=config.min_cluster_mm3, closing_mm=config.closing_mm)


def _score_inputs(prepared: PreparedSession, ref: Reference, config: LabelConfig) -> tuple[np.ndarray, np.ndarray]:
    """The DAWM score map (:func:`~dawm.label.probability.dawm_score` under the configured rule) and the
    voxels that are never DAWM (lesions and lesion-like voxels)."""
    like = lesion_like(prepared.maps.raw.get("T1"), ref.mean.get("T1"), config.max_t1_rise)
    exclude = prepared.lesion | like if like is not None else prepared.lesion
    return dawm_score(ref.z.get("T1"), ref.z.get("MTR"), config.rule), exclude


def probability_map(prepared: PreparedSession, ref: Reference, config: LabelConfig, *, eligible: np.ndarray | None = None,
                    null_shape: np.ndarray | None = None, n_controls: int = 0) -> tuple[np.ndarray, ProbabilityFit]:
    """The DAWM probability map (float32 0-1, session grid) of a prepared session under ``ref`` and its
    fit (:func:`dawm.label.probability.dawm_probability`: eligible WM as :func:`eligible_of`, the null's
    centre and SD from the reference NAWM, its shape from ``null_shape``, the pooled
    :func:`control_score_histogram` of ``n_controls`` other controls, or Gaussian when None; lesions
    and lesion-like voxels excluded)."""
    eligible = eligible_of(prepared, config) if eligible is None else eligible
    score, exclude = _score_inputs(prepared, ref, config)
    return dawm_probability(score, eligible, prepared.maps.reference & ~exclude, exclude=exclude, null_shape=null_shape,
                            n_controls=n_controls, zero_sd=config.probability_zero_sd)


def control_score_histogram(info: SessionInfo, *, config: LabelConfig, pre_root: Path,
                            model: ControlsNormativeModel | None) -> tuple[str, str, np.ndarray]:
    """A control session's contribution to its normative group's null shape: ``(norm_key, subject,
    counts)``, the :func:`~dawm.label.probability.standardised_histogram` of its eligible voxels'
    scores, z maps made exactly as when it is labelled (leave-one-out controls reference, or self)."""
    prepared = prepare_session(info, pre_root, config)
    ref, _ = reference_for(prepared, config, model, is_control=True)
    score, exclude = _score_inputs(prepared, ref, config)
    null = empirical_null(score[prepared.maps.reference & ~exclude], zero_sd=config.probability_zero_sd)
    counts = standardised_histogram(score[eligible_of(prepared, config) & ~exclude], null)
    return prepared.maps.norm_key, info.inputs.subject, counts


def control_null_shapes(infos: list[SessionInfo], pre_root: Path, config: LabelConfig, model: ControlsNormativeModel | None, *,
                        jobs: int = 1, backend: Backend = "local", address: str | None = None) -> dict[str, list[tuple[str, np.ndarray]]]:
    """Per normative group, the ``(subject, counts)`` of every control session of ``config.control_group``
    (:func:`control_score_histogram`; failures are logged and left out)."""
    controls = [i for i in infos if i.group == config.control_group]
    fn = functools.partial(control_score_histogram, config=config, pre_root=pre_root, model=model)
    out: dict[str, list[tuple[str, np.ndarray]]] = {}
    for o in run_all(fn, controls, names=[c.key for c in controls], jobs=jobs, backend=backend, address=address,
                     description="control score distributions"):
        if o.ok:
            key, subject, counts = o.result
            out.setdefault(key, []).append((subject, counts))
    return out


def null_shape_for(maps: SessionMaps, control_nulls: dict[str, list[tuple[str, np.ndarray]]] | None) -> tuple[np.ndarray | None, int]:
    """The pooled null-shape counts of the controls of the session's group other than its subject, and their number."""
    others = [c for subject, c in (control_nulls or {}).get(maps.norm_key, []) if subject != maps.subject]
    return (np.sum(others, axis=0), len(others)) if others else (None, 0)


def volumes_table(dseg: np.ndarray, location: np.ndarray, wm: np.ndarray, voxel_ml: float,
                  prob: np.ndarray | None = None) -> pd.DataFrame:
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
        row.update({"lesion_ml": l_ml, "wm_ml": wm_ml, "dawm_pct_wm": 100 * d_ml / wm_ml if wm_ml else np.nan,
                    "lesion_pct_wm": 100 * l_ml / wm_ml if wm_ml else np.nan})
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
    return _file(out_root, inputs, desc="label", suffix="log", extension=".json")


def label_complete(out_root: Path, inputs: SessionInfo | SessionInputs) -> bool:
    """Whether the session's log exists and holds the expected DAWM volume (a log of a dawm without
    the probability map does not count: the session is labelled again)."""
    inputs = inputs.inputs if isinstance(inputs, SessionInfo) else inputs
    path = label_log_path(Path(out_root), inputs)
    return path.exists() and "dawm_expected_ml" in json.loads(path.read_text()).get("Volumes", {})


def label_session(info: SessionInfo, *, config: LabelConfig, pre_root: str | Path, out_root: str | Path,
                  model: ControlsNormativeModel | None = None, force: bool = False,
                  control_nulls: dict[str, list[tuple[str, np.ndarray]]] | None = None) -> LabelResult:
    """Label one session into ``out_root`` (see the module docstring); skipped when its log exists
    unless ``force``. ``control_nulls``: :func:`control_null_shapes` (None: Gaussian null shape)."""
    out_root, inputs = Path(out_root), info.inputs
    marker = label_log_path(out_root, inputs)
    if not force and label_complete(out_root, inputs):
        done = json.loads(marker.read_text())
        return LabelResult(info.key, done["Reference"]["how"], reused=True,
                           **{k: done["Volumes"][k] for k in ("dawm_ml", "lesion_ml", "wm_ml", "dawm_expected_ml")})
    marker.unlink(missing_ok=True)
    prepared = prepare_session(info, pre_root, config)
    ref, ref_record = reference_for(prepared, config, model, is_control=info.group == config.control_group)
    eligible = eligible_of(prepared, config)
    dseg = apply_rule(prepared, ref, config, eligible=eligible)
    null_shape, n_controls = null_shape_for(prepared.maps, control_nulls)
    prob, prob_fit = probability_map(prepared, ref, config, eligible=eligible, null_shape=null_shape, n_controls=n_controls)
    affine = prepared.maps.affine
    voxel_ml = float(np.prod(prepared.maps.spacing_mm)) / 1000.0

    def name(**kw) -> Path:
        return _file(out_root, inputs, **kw)

    outputs = [save_volume(dseg, affine, name(space="session", desc="dawm", suffix="dseg"), dtype=np.uint8),
               save_volume(prepared.location, affine, name(space="session", desc="location", suffix="dseg"), dtype=np.uint8),
               save_volume(prob, affine, name(space="session", label="DAWM", suffix="probseg"), dtype=np.float32)]
    write_json(name(space="session", label="DAWM", suffix="probseg", extension=".json"), _probseg_sidecar(prob_fit, ref, config, voxel_ml))
    for mod, z in ref.z.items():
        outputs.append(save_volume(z, affine, name(space="session", desc=f"{mod}z", suffix="statmap")))
        write_json(name(space="session", desc=f"{mod}z", suffix="statmap", extension=".json"), {
            "Description": f"{mod} z-score against the {ref.how} reference: (smoothed value - expected) / SD, "
                           f"recentred by {ref.shift[mod]:+.3f} on the subject's reference NAWM; "
                           + ("DAWM is high T1 z" if mod == "T1" else "DAWM is low (negative) MTR z"),
            "Units": "z", "SmoothingFWHMmm": config.smoothing_fwhm_mm})
    table = volumes_table(dseg, prepared.location, prepared.maps.wm, voxel_ml, prob)
    table.insert(0, "session_id", f"ses-{inputs.session}" if inputs.session else "n/a")
    table.insert(0, "participant_id", f"sub-{inputs.subject}")
    outputs.append(write_tsv(name(desc="volumes", suffix="metrics", extension=".tsv"), table))
    total = table.iloc[0]
    volumes = {k: float(total[k]) for k in ("dawm_ml", "dawm_expected_ml", "lesion_ml", "wm_ml", "dawm_pct_wm", "lesion_pct_wm")}
    write_json(marker, {
        "Subject": inputs.subject, "Session": inputs.session, "Group": info.group, "Age": info.age, "Scanner": info.scanner,
        "FieldStrength": info.field_t, "NormativeGroup": prepared.maps.norm_key,
        "Reference": {"how": ref.how, "recentering_shift_z": ref.shift, "abnormality_correlation": ref.rho, **ref_record},
        "Rule": {"rule": config.rule, "z_threshold": config.z_threshold, "chi2_p": config.chi2_p},
        "Probability": prob_fit.to_dict(),
        "LesionMask": prepared.lesion_source, "Notes": prepared.notes, "Volumes": volumes,
        "Outputs": sorted(str(p.relative_to(out_root)) for p in outputs),
    })
    return LabelResult(info.key, ref.how, volumes["dawm_ml"], volumes["lesion_ml"], volumes["wm_ml"],
                       dawm_expected_ml=volumes["dawm_expected_ml"])


def _probseg_sidecar(fit: ProbabilityFit, ref: Reference, config: LabelConfig, voxel_ml: float) -> dict:
    """The JSON sidecar of the ``label-DAWM_probseg``: what the probability is and the fitted null."""
    both = {"T1", "MTR"} <= set(ref.z)
    score = {"both": "min(z_T1, -z_MTR)", "either": "max(z_T1, -z_MTR)", "chi2": "(z_T1 - z_MTR) / sqrt(2)"}.get(config.rule) if both else None
    score = score or ("z_T1" if "T1" in ref.z and (config.rule != "mtr" or not both) else "-z_MTR")
    shape = (f"the pooled standardised scores of {fit.n_controls} other healthy control(s) of the same normative group"
             if fit.null_shape == "controls" else "Gaussian, its high tail at least the mirrored low tail of the session's own scores")
    return {
        "Description": "Probability that the voxel is DAWM: 1 - local false discovery rate (Efron 2004) of the score "
                       f"s = {score} (z maps against the {ref.how} reference) among the eligible WM voxels "
                       "(pure WM away from lesions, lesion-like voxels excluded; 0 elsewhere). Null: centre and SD from the "
                       f"low side of the reference NAWM's scores, shape {shape}; mixture density by a Gaussian kernel; "
                       f"P = 0 up to {fit.zero_sd:g} null SD above the centre (zero assumption) and non-decreasing in s. "
                       "The sum of P times the voxel volume is the expected DAWM volume (dawm_expected_ml). "
                       "See dawm.label.probability.",
        "Units": "probability",
        "Method": "local false discovery rate (two-group model)",
        "Score": score, "NullShape": fit.null_shape, "NullControls": fit.n_controls,
        "NullCentre": fit.null.centre, "NullSD": fit.null.sd, "ReferencePi0": fit.null.pi0, "ReferenceVoxels": fit.null.n,
        "Pi0": fit.pi0, "EligibleVoxels": fit.n_eligible, "ZeroZoneSD": fit.zero_sd, "KernelBandwidthSD": fit.bandwidth_sd,
        "ExpectedDAWMVoxels": fit.expected_voxels, "ExpectedDAWMml": fit.expected_voxels * voxel_ml,
    }


def _control_summary(info: SessionInfo, *, config: LabelConfig, pre_root: Path, model: ControlsNormativeModel):
    return model.summarise(prepare_session(info, pre_root, config).maps)


def fit_controls(infos: list[SessionInfo], pre_root: Path, config: LabelConfig, *, jobs: int = 1, backend: Backend = "local",
                 address: str | None = None) -> ControlsNormativeModel:
    """Fit the controls' model on every session of ``config.control_group`` (failures are logged and left out)."""
    from dawm.preprocess.template import load_template

    tpl = load_template(2)
    model = ControlsNormativeModel(config, mni_shape=tpl.t1.shape, mni_affine=np.array(tpl.affine))
    controls = [i for i in infos if i.group == config.control_group]
    fn = functools.partial(_control_summary, config=config, pre_root=pre_root, model=model)
    outcomes = run_all(fn, controls, names=[c.key for c in controls], jobs=jobs, backend=backend, address=address,
                       description="fitting control norms")
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
    pre_root = Path(preprocess_dir) if preprocess_dir is not None else bids_dir / "derivatives" / PREPROCESS
    if not pre_root.is_dir():
        raise InputError(f"{pre_root}: no dawm preprocess outputs (run dawm preprocess first)")
    all_infos = session_infos(bids_dir)
    wanted = {p.removeprefix("sub-") for p in participant_label} if participant_label else None
    if wanted is not None:
        session_infos(bids_dir, participant_label)  # InputError for unknown participants
    infos = [i for i in all_infos if wanted is None or i.inputs.subject in wanted]
    if not infos:
        raise InputError(f"{bids_dir}: no session found")
    if not any(preprocessed(pre_root, i.inputs) for i in infos):
        raise InputError(f"{pre_root}: none of the sessions is pre-processed (run dawm preprocess first)")
    out_root = Path(output) if output is not None else bids_dir / "derivatives" / STAGE
    init_derivative(out_root, name="dawm label", description="T1/MTR z-scores against a normative reference; DAWM, lesion and location labels",
                    source=bids_dir)
    config.save(out_root / "label_config.json")
    write_dseg_tsv(out_root / "desc-dawm_dseg.tsv", DAWM_LABELS)
    write_dseg_tsv(out_root / "desc-location_dseg.tsv", LOCATION_LABELS)

    model = control_nulls = None
    pending = force or not all(label_complete(out_root, i.inputs) for i in infos)
    ready = [i for i in all_infos if preprocessed(pre_root, i.inputs)]
    if config.reference == "controls" and pending:
        model = fit_controls(ready, pre_root, config, jobs=jobs, backend=backend, address=address)
        if not model.groups_:
            log.warning("no control (group %s) could be used: every session uses its own NAWM as reference", config.control_group)
        model.save(out_root / MODEL_FILE)
    if pending:
        control_nulls = control_null_shapes(ready, pre_root, config, model, jobs=jobs, backend=backend, address=address)
    fn = functools.partial(label_session, config=config, pre_root=pre_root, out_root=out_root, model=model, force=force,
                           control_nulls=control_nulls)
    outcomes = run_all(fn, infos, names=[i.key for i in infos], jobs=jobs, backend=backend, address=address, description="labelling")
    tables = [pd.read_csv(p, sep="\t") for p in sorted(out_root.glob("sub-*/**/*_desc-volumes_metrics.tsv"))]
    if tables:
        write_tsv(out_root / "volumes.tsv", _wide_volumes(pd.concat(tables, ignore_index=True), all_infos, out_root))
    record = provenance("label", config)
    record["sessions"] = {o.name: ("ok" if o.ok else f"failed: {o.error}") for o in outcomes}
    write_json(out_root / "provenance.json", record)
    return outcomes


def _wide_volumes(long: pd.DataFrame, infos: list[SessionInfo], out_root: Path) -> pd.DataFrame:
    """One row per session: totals (``dawm_ml`` binary, ``dawm_expected_ml`` from the probability map, ...), then
    ``dawm_<location>_ml`` / ``lesion_<location>_ml``, plus group, scanner, reference."""
    meta = {(f"sub-{i.inputs.subject}", f"ses-{i.inputs.session}" if i.inputs.session else "n/a"): i for i in infos}
    rows = []
    for (pid, sid), g in long.groupby(["participant_id", "session_id"], sort=True):
        info = meta.get((pid, sid))
        total = g[g.location == "all"].iloc[0]
        row = {"participant_id": pid, "session_id": sid, "group": info.group if info else None,
               "scanner": info.scanner if info else None, "age": info.age if info else None}
        if info is not None and label_log_path(out_root, info.inputs).exists():
            row["reference"] = json.loads(label_log_path(out_root, info.inputs).read_text())["Reference"]["how"]
        row.update({k: total.get(k, np.nan) for k in ("dawm_ml", "dawm_expected_ml", "lesion_ml", "wm_ml", "dawm_pct_wm", "lesion_pct_wm")})
        for r in g[g.location != "all"].itertuples():
            row[f"dawm_{r.location}_ml"] = r.dawm_ml
            row[f"lesion_{r.location}_ml"] = r.lesion_ml
        rows.append(row)
    return pd.DataFrame(rows)
