"""Simulate one subject: all sessions, all modalities, written as raw BIDS plus truth derivatives.

:func:`simulate_subject` is a top-level picklable function (it runs in worker processes). It
returns a :class:`SubjectSummary` with volumes and voxel samples for the cohort report.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from dawm.bids.derivative_files import MaskFiles, TruthFiles
from dawm.bids.derivatives import write_json, write_tsv
from dawm.bids.layout import DERIVATIVES, RawFiles, SessionRef, sidecar_path
from dawm.bids.layout import session_id as session_id_of
from dawm.image.components import count_components, filter_components
from dawm.image.io import save_volume
from dawm.image.resample import resample
from dawm.labels import DAWM_LABELS, LOCATION_LABELS
from dawm.labels import TISSUE_LABELS as _TISSUE_CLASSES
from dawm.simulate import acquisition as acq
from dawm.simulate import anatomy, pathology
from dawm.simulate.clinical import Participant, draw_edss
from dawm.simulate.config import SimulationConfig
from dawm.simulate.pathology import DAWM_LOAD_ML, LESION_LOAD_ML
from dawm.simulate.properties import DAWM_EFFECT, SubjectTissueTraits, signal_compartments, tissue_properties
from dawm.simulate.scanners import ScannerProfile
from dawm.simulate.signal import MPRAGESignal, flair_signal, mt_pair, mtr_map, t1_from_uni, uni

TRUTH = f"{DERIVATIVES}/{TruthFiles.NAME}"
#: Expert-style lesion masks drawn on each session's FLAIR grid (as research cohorts ship them).
LESION_MASKS = f"{DERIVATIVES}/{MaskFiles.NAME}"
#: Lesions smaller than this (FLAIR voxels) are missed by the simulated rater.
RATER_MIN_VOXELS = 3
#: Look-up tables of the truth's label maps (codes of :mod:`dawm.labels`).
TISSUE_LABELS = {0: "background", **_TISSUE_CLASSES}
PATHOLOGY_LABELS = DAWM_LABELS
SIGNAL_SCALE = 1.0e5  # arbitrary scanner units
N_SAMPLES = 600  # voxels per class kept per session for the cohort report


@dataclass(frozen=True)
class SubjectTask:
    participant: Participant
    index: int  # position in the cohort, for the seed
    config: SimulationConfig
    profile: ScannerProfile
    out_dir: str


@dataclass
class SubjectSummary:
    participant_id: str
    sessions: list[dict] = field(default_factory=list)  # volumes and clinical values per session
    stats: list[dict] = field(default_factory=list)  # per session, modality, tissue: mean/sd/n
    samples: list[dict] = field(default_factory=list)  # voxel values of DAWM vs NAWM per modality


def _traits(rng: np.random.Generator, shape, spacing_mm: float, patient: bool) -> SubjectTissueTraits:
    t1_field = anatomy._smooth_noise(rng, tuple(max(s // 4, 2) for s in shape), 15.0 / spacing_mm / 4)
    mtr_field = anatomy._smooth_noise(rng, tuple(max(s // 4, 2) for s in shape), 15.0 / spacing_mm / 4)

    def up(x):
        return ndimage.zoom(x, [s / c for s, c in zip(shape, x.shape)], order=1)[: shape[0], : shape[1], : shape[2]].astype(np.float32)

    texture = anatomy._smooth_noise(rng, shape, 0.6) * 0.02
    return SubjectTissueTraits(
        t1_field=up(t1_field) * 0.015,
        mtr_field=up(mtr_field) * 0.5,
        texture=texture.astype(np.float32),
        dawm_t1=float(rng.uniform(0.12, 0.20)) if patient else DAWM_EFFECT["t1"],
        dawm_mtr_pu=float(rng.uniform(4.0, 7.0)) if patient else DAWM_EFFECT["mtr_pu"],
        nawm_mtr_shift_pu=float(-rng.uniform(0.5, 2.5)) if patient else 0.0,
        nawm_t1_skew=float(rng.uniform(0.0, 0.02)) if patient else 0.0,
    )


def _location_labels(tpl: anatomy.TemplateSpace) -> np.ndarray:
    """MAGNIMS-like location class of every WM voxel (template grid)."""
    loc = np.full(tpl.shape, 3, np.uint8)
    loc[tpl.dist_cortex_mm <= 3.0] = 2
    loc[tpl.dist_ventricle_mm <= 10.0] = 1
    loc[tpl.region == 2] = 4
    loc[tpl.wm < 0.3] = 0
    return loc


def _sidecar(profile: ScannerProfile, **fields) -> dict:
    base = {
        "Manufacturer": profile.manufacturer,
        "ManufacturersModelName": profile.model,
        "MagneticFieldStrength": profile.field_t,
        "InstitutionName": f"dawm simulated site {profile.name}",
    }
    base.update({k: v for k, v in fields.items() if v is not None})
    return base


def _store(path: Path, data: np.ndarray, affine: np.ndarray, sidecar: dict | None, *, integer: bool | None) -> None:
    """Write an image as a scanner would: ``integer=True`` int16 with scl_slope (rescaled),
    ``False`` plain int16 in 12-bit scanner units (99.9th percentile at 4000), ``None`` float32
    (quantitative maps)."""
    if integer is None:
        save_volume(data.astype(np.float32), affine, path)
    elif integer:
        save_volume(np.nan_to_num(data), affine, path, dtype=np.int16, scaled=True)
    else:
        data = np.nan_to_num(data)
        gain = 4000.0 / max(float(np.percentile(np.abs(data), 99.9)), 1e-12)
        save_volume(np.clip(np.round(data * gain), -32768, 32767), affine, path, dtype=np.int16)
    if sidecar is not None:
        write_json(sidecar_path(path), sidecar)


def _samples(rng, values: np.ndarray, labels: np.ndarray, wm_mask: np.ndarray, lesion: np.ndarray, norm: float) -> dict:
    out = {}
    for cls, mask in (("DAWM", labels == 2), ("NAWM", wm_mask & (labels == 0) & ~lesion)):
        idx = np.flatnonzero(mask)
        if idx.size:
            pick = rng.choice(idx, size=min(N_SAMPLES, idx.size), replace=False)
            out[cls] = (values.ravel()[pick] / norm).round(4).tolist()
    return out


def simulate_subject(task: SubjectTask) -> SubjectSummary:
    """Simulate every session of one participant and write its files; see the module docstring."""
    cfg, prof, part = task.config, task.profile, task.participant
    root = Path(task.out_dir)
    ss = np.random.SeedSequence([cfg.seed, task.index])
    rng_anat, rng_path, rng_acq, rng_clin = (np.random.default_rng(s) for s in ss.spawn(4))
    tpl = anatomy.template_space(cfg.resolution_mm)
    patient = part.group != "HC"
    brain_ml = anatomy.draw_brain_volume_ml(rng_anat, part.age, part.sex)
    size_scale = (brain_ml / anatomy.template_brain_ml(tpl)) ** (1.0 / 3.0)
    warp = anatomy.random_subject_warp(rng_anat, tpl, size_scale=size_scale)
    traits = _traits(rng_anat, tpl.shape, tpl.spacing_mm, patient)
    location_tpl = _location_labels(tpl)

    # Pathology at baseline and its evolution (template space).
    if patient:
        load = float(np.clip(rng_path.lognormal(np.log(LESION_LOAD_ML[part.group]), 0.8), 0.5, 60.0))
        lesions = pathology.draw_lesions(rng_path, tpl, load, size_scale=size_scale)
        frac, grade = pathology.render_lesions(lesions, tpl, rng_path)
        dawm_ml = float(np.clip(rng_path.lognormal(np.log(DAWM_LOAD_ML[part.group]), 0.6), 2.0, 60.0)) if part.dawm_present else 0.0
        dawm = pathology.draw_dawm(rng_path, tpl, frac, dawm_ml, size_scale=size_scale)
        state = pathology.PathologyState(frac, grade, dawm, lesions)
    else:
        zeros = np.zeros(tpl.shape, np.float32)
        state = pathology.PathologyState(zeros, zeros, zeros, [])

    summary = SubjectSummary(participant_id=part.participant_id)
    years = 0.0
    shells = None
    b1_rng = np.random.default_rng(ss.spawn(1)[0])
    mp2 = MPRAGESignal(prof.mp2rage)
    mpr = MPRAGESignal(prof.mprage)
    for s in range(cfg.sessions):
        ses = f"{s + 1:02d}"
        transitions = None
        if s > 0:
            interval = float(np.clip(rng_path.normal(cfg.followup_years, 0.5), 0.5, None))
            years += interval
            if patient:
                state, transitions = pathology.evolve(
                    rng_path, tpl, state, years=interval, group=part.group, dawm_present=part.dawm_present, size_scale=size_scale
                )
        atrophy_mm = 0.0
        if patient:
            atrophy_mm = float(min(0.4 + 0.12 * (part.disease_duration + years), 4.0))
        coords = warp.coordinates(anatomy.atrophy_displacement(tpl, atrophy_mm))
        fr = {k: np.clip(anatomy.pull(getattr(tpl, k), coords), 0, 1) for k in ("wm", "gm", "deep_gm", "striatum", "csf")}
        brain = fr["wm"] + fr["gm"] + fr["deep_gm"] + fr["striatum"] + fr["csf"]  # = the template brain mask, warped
        if shells is None:
            shells = anatomy.head_shells(rng_anat, brain, tpl.spacing_mm)
        fr["csf"] = np.clip(fr["csf"] + shells["csf_rim"], 0, 1)
        fr["skull"], fr["fat"] = shells["skull"], shells["fat"]
        les_frac, les_grade, dawm_sev = (
            anatomy.pull(m, coords) if m.any() else np.zeros(tpl.shape, np.float32)
            for m in (state.lesion_frac, state.lesion_grade, state.dawm)
        )
        location = anatomy.pull(location_tpl, coords, order=0)

        # Truth masks on the subject grid.
        lesion = les_frac >= 0.5
        tissue = np.zeros(tpl.shape, np.uint8)
        stack = np.stack(
            [fr["csf"] * (brain >= 0.5), (fr["gm"] + fr["deep_gm"] + fr["striatum"]) * (brain >= 0.5), fr["wm"] * (brain >= 0.5)]
        )
        inbrain = (brain >= 0.5) & (stack.sum(0) > 0.05)
        tissue[inbrain] = (np.argmax(stack, axis=0) + 1)[inbrain].astype(np.uint8)
        tissue[lesion & inbrain] = 3
        dawm_mask = (dawm_sev >= 0.5) & (tissue == 3) & ~lesion
        patho = np.zeros(tpl.shape, np.uint8)
        patho[lesion & inbrain] = 1
        patho[dawm_mask] = 2
        location = np.where(tissue == 3, location, 0).astype(np.uint8)

        age = part.age + years
        common = dict(lesion_frac=les_frac, lesion_grade=les_grade, dawm=dawm_sev, traits=traits, age_years=age, field_t=prof.field_t)
        qmaps = tissue_properties(fr, dawm_scale=1.0, **common)  # the truth maps: voxel averages
        # Images sum the signals of the tissue and CSF compartments. One physics: the clinical
        # images see the same compartments, unless a study lowers the experimental
        # dawm_visibility knob.
        q_comp = signal_compartments(fr, dawm_scale=1.0, **common)
        clin = q_comp if cfg.dawm_visibility == 1.0 else signal_compartments(fr, dawm_scale=cfg.dawm_visibility, **common)

        # Transmit field (subject grid, smooth) and signals.
        b1 = (1 + prof.b1_amplitude * anatomy._smooth_noise(b1_rng, tuple(max(n // 8, 2) for n in tpl.shape), 1.0)).astype(np.float32)
        b1 = ndimage.zoom(b1, [n / c for n, c in zip(tpl.shape, b1.shape)], order=1)[: tpl.shape[0], : tpl.shape[1], : tpl.shape[2]]
        wm_pure = fr["wm"] > 0.9
        # Tissue statistics use voxels of (nearly) pure tissue, as literature values are.
        pure_tissue = np.where((stack.max(0) >= 0.85) | lesion, tissue, 0).astype(np.uint8)
        summary_ses = _acquire_session(
            rng_acq,
            root,
            part,
            prof,
            cfg,
            ses,
            tpl,
            q_comp,
            clin,
            b1,
            mp2,
            mpr,
            wm_pure,
            pure_tissue,
            patho,
            lesion,
            summary,
        )

        # Truth derivatives, subject space.
        vox_ml = tpl.spacing_mm**3 / 1000.0
        key, truth = SessionRef(part.participant_id, ses), TruthFiles.in_dataset(root)
        save_volume(tissue, tpl.affine, truth.tissue_dseg(key))
        save_volume(patho, tpl.affine, truth.pathology_dseg(key))
        save_volume(location, tpl.affine, truth.location_dseg(key))
        save_volume(lesion & inbrain, tpl.affine, truth.mask(key, "lesion"))
        save_volume(dawm_mask, tpl.affine, truth.mask(key, "DAWM"))
        save_volume(inbrain, tpl.affine, truth.mask(key, "brain"))
        save_volume(np.clip(dawm_sev, 0, 1), tpl.affine, truth.dawm_probseg(key))
        for suffix, arr, unit in (
            ("T1map", qmaps.t1_ms, "ms"),
            ("T2map", qmaps.t2_ms, "ms"),
            ("PDmap", qmaps.pd, "arbitrary"),
            ("MTRmap", qmaps.mtr_pu, "percent"),
        ):
            save_volume(arr, tpl.affine, truth.property_map(key, suffix))
            write_json(truth.sidecar(truth.property_map(key, suffix)), {"Units": unit, "Description": "simulation truth property map"})
        if transitions is not None:
            trans = anatomy.pull(transitions, coords, order=0) * inbrain
            save_volume(trans.astype(np.uint8), tpl.affine, truth.transition_dseg(key))
            summary_ses.update({f"{TRANSITION_KEY[k]}_ml": float((trans == k).sum() * vox_ml) for k in TRANSITION_KEY})
        lesion_ml, dawm_ml = float((patho == 1).sum() * vox_ml), float(dawm_mask.sum() * vox_ml)
        edss = draw_edss(rng_clin, part, years_since_baseline=years, lesion_ml=lesion_ml, dawm_ml=dawm_ml)
        summary_ses.update(
            {
                "session_id": session_id_of(ses),
                "years_since_baseline": round(years, 2),
                "age": round(age, 1),
                "edss": edss,
                "lesion_ml": lesion_ml,
                "dawm_ml": dawm_ml,
                "wm_ml": float((tissue == 3).sum() * vox_ml),
                "brain_ml": float(inbrain.sum() * vox_ml),
                "n_lesions": int(_count_components(patho == 1)),
                "atrophy_mm": round(atrophy_mm, 2),
            }
        )
        for k, name in LOCATION_LABELS.items():
            if k:
                summary_ses[f"dawm_{name}_ml"] = float(((patho == 2) & (location == k)).sum() * vox_ml)
                summary_ses[f"lesion_{name}_ml"] = float(((patho == 1) & (location == k)).sum() * vox_ml)
        summary.sessions.append(summary_ses)

    sessions_tsv = [
        {k: v for k, v in row.items() if k in ("session_id", "acq_time", "age", "edss", "years_since_baseline", "scanner")}
        for row in summary.sessions
    ]
    raw = RawFiles(root)
    write_tsv(raw.sessions_table(part.participant_id), pd.DataFrame(sessions_tsv))
    write_json(raw.sessions_json(part.participant_id), SESSIONS_JSON)
    write_json(TruthFiles.in_dataset(root).simulation(part.participant_id), asdict(summary))
    return summary


SESSIONS_JSON = {
    "age": {"Description": "age at the session", "Units": "year"},
    "edss": {"Description": "Expanded Disability Status Scale at the session (n/a for controls)"},
    "years_since_baseline": {"Description": "time since the first session", "Units": "year"},
    "scanner": {"Description": "scanner profile of the session"},
}


TRANSITION_KEY = {k: v for k, v in pathology.TRANSITIONS.items() if k}


def _count_components(mask: np.ndarray) -> int:
    return count_components(mask, connectivity=1)


def _rater_lesion_mask(root: Path, key: SessionRef, lesion: np.ndarray, tpl, g: acq.Grid, s2s: np.ndarray) -> None:
    """The lesion mask a rater draws on the FLAIR: the truth lesions seen through the FLAIR's PSF
    (>= 50 %), without components under ``RATER_MIN_VOXELS`` voxels (``space-FLAIR``, FLAIR grid)."""
    seen = acq.acquire(lesion.astype(np.float32), tpl.affine, g, s2s) >= 0.5
    seen = filter_components(seen, connectivity=1, min_voxels=RATER_MIN_VOXELS)
    save_volume(seen.astype(np.uint8), g.affine, MaskFiles.in_dataset(root).lesion_mask(key, "FLAIR"), dtype=np.uint8)


def acquisition_voxel_mm(prof: ScannerProfile, kind: str, resolution_mm: float) -> tuple[float, float, float]:
    """Voxel size (in-plane, in-plane, slice thickness; mm) of one acquisition of ``prof`` in a
    rendition at ``resolution_mm``: the site's 1 mm protocol with every voxel edge scaled by it,
    except that a 2D FLAIR's slices keep their thickness unless the rendition is coarser.
    ``kind``: ``T1w``, ``MP2RAGE``, ``MT`` or ``FLAIR``."""
    r = resolution_mm
    if kind in ("T1w", "MP2RAGE"):
        return (r, r, r)
    if kind == "MT":
        return (prof.mt_voxel_mm * r,) * 3
    f = prof.flair
    return (f.voxel_mm[0] * r, f.voxel_mm[1] * r, max(f.voxel_mm[2], r) if f.dims == "2D" else f.voxel_mm[2] * r)


def rendition_snr_gain(prof: ScannerProfile, kind: str, resolution_mm: float) -> float:
    """Per-voxel SNR of an acquisition at ``resolution_mm`` over that of the site's 1 mm protocol:
    sqrt of the voxel-volume ratio. A coarser rendition is the same protocol seen on larger voxels,
    i.e. the 1 mm acquisition averaged into them (as resampling it to that grid would give), so its
    noise falls as the square root of the voxels averaged. (A dedicated coarse acquisition of the
    same duration would gain the full volume ratio; this keeps to the conservative half.) 1.0 at
    ``resolution_mm`` 1."""
    volume = float(np.prod(acquisition_voxel_mm(prof, kind, resolution_mm)))
    return float(np.sqrt(volume / np.prod(acquisition_voxel_mm(prof, kind, 1.0))))


def _acquire_session(rng, root, part, prof, cfg, ses, tpl, qmaps, clin, b1, mp2, mpr, wm_pure, tissue, patho, lesion, summary) -> dict:
    """Make and write the session's images; record stats and samples. Returns the session row start.

    ``qmaps`` (quantitative images) and ``clin`` (T1w, FLAIR) are the signal compartments of
    :func:`signal_compartments`; each image sums their signals."""
    r = cfg.resolution_mm
    pose = acq.rigid_matrix(rng.normal(0, 4.0, 3), rng.normal(0, 5.0, 3))
    quality = float(rng.lognormal(0.0, 0.2))
    motion = float(rng.uniform(0.15, 0.5)) if rng.random() < prof.motion_probability else 0.0
    motion = prof.motion_amplitude if prof.motion_amplitude is not None else motion  # drawn anyway: same random stream
    key, raw, truth = SessionRef(part.participant_id, ses), RawFiles(root), TruthFiles.in_dataset(root)
    poses: dict[str, list] = {}

    def grid(kind: str) -> acq.Grid:
        tilt = prof.oblique_deg + rng.normal(0, 2.0)
        vox = acquisition_voxel_mm(prof, kind, r)
        if kind == "T1w" or kind == "MP2RAGE":
            return acq.make_grid(vox, (240.0, 240.0, 176.0), orientation="sagittal", storage=prof.storage, oblique_deg=tilt)
        if kind == "MT":
            return acq.make_grid(vox, (240.0, 240.0, 156.0), orientation="axial", storage=prof.storage, oblique_deg=tilt)
        f = prof.flair
        orient = "axial" if f.dims == "2D" else "sagittal"
        fov = (230.0, 230.0, 156.0) if f.dims == "2D" else (240.0, 240.0, 176.0)
        return acq.make_grid(
            vox, fov, orientation=orient, storage=prof.storage, oblique_deg=tilt, slice_gap_mm=f.slice_gap_mm if f.dims == "2D" else 0.0
        )

    def gain(kind: str) -> float:
        return rendition_snr_gain(prof, kind, r)

    def motion_of(kind: str) -> np.ndarray:
        m = np.eye(4) if kind == "T1w" else acq.rigid_matrix(rng.normal(0, 1.0, 3), rng.normal(0, 1.0, 3))
        s2s = pose @ m
        poses[kind] = s2s.tolist()
        return s2s

    def noisy(sig_subject, g, s2s, field, sigma, ghost):
        img = acq.acquire(sig_subject, tpl.affine, g, s2s) * field
        img = acq.add_complex_noise(rng, img, sigma)
        return acq.ghosting(rng, img, ghost, pe_axis=1)

    def wm_level(sig):
        return float(np.median(np.abs(sig[wm_pure]))) if wm_pure.any() else float(np.abs(sig).max())

    row: dict = {"scanner": prof.name}
    stats_targets = []

    # T1w (MPRAGE).
    g = grid("T1w")
    s2s = motion_of("T1w")
    sig = sum(c.pd * mpr(c.t1_ms, b1)[0] for c in clin) * SIGNAL_SCALE
    field = acq.smooth_field_on_grid(rng, g, prof.bias_amplitude)
    t1w = np.abs(noisy(sig, g, s2s, field, wm_level(sig) / (prof.snr * gain("T1w") * quality), motion))
    save_volume(field, g.affine, truth.bias_field(key, "T1w"), dtype=np.int16, scaled=True)
    _store(
        raw.image(key, "T1w"),
        t1w,
        g.affine,
        _sidecar(
            prof,
            RepetitionTime=prof.mprage.tr_ms / 1000,
            InversionTime=prof.mprage.ti_ms[0] / 1000,
            FlipAngle=prof.mprage.flip_deg[0],
            EchoTime=0.003,
            SliceThickness=g.psf_fwhm_mm[2],
            MRAcquisitionType="3D",
            PulseSequenceType="MPRAGE",
        ),
        integer=prof.integer_storage,
    )
    stats_targets.append(("T1w", t1w, g, s2s, "normalised"))

    # FLAIR.
    g = grid("FLAIR")
    s2s = motion_of("FLAIR")
    f = prof.flair
    sig = np.abs(sum(flair_signal(c.t1_ms, c.t2_ms, c.pd, tr_ms=f.tr_ms, ti_ms=f.ti_ms, te_ms=f.te_ms, magnitude=False) for c in clin))
    sig = sig * SIGNAL_SCALE
    field = acq.smooth_field_on_grid(rng, g, prof.bias_amplitude)
    snr = prof.snr * 0.8 * (1.3 if f.dims == "2D" else 1.0) * gain("FLAIR") * quality
    flair = np.abs(noisy(sig, g, s2s, field, wm_level(sig) / snr, motion))
    save_volume(field, g.affine, truth.bias_field(key, "FLAIR"), dtype=np.int16, scaled=True)
    _store(
        raw.image(key, "FLAIR"),
        flair,
        g.affine,
        _sidecar(
            prof,
            RepetitionTime=f.tr_ms / 1000,
            EchoTime=f.te_ms / 1000,
            InversionTime=f.ti_ms / 1000,
            SliceThickness=f.voxel_mm[2] if f.dims == "2D" else g.psf_fwhm_mm[2],
            SpacingBetweenSlices=(f.voxel_mm[2] + f.slice_gap_mm) if f.dims == "2D" else None,
            MRAcquisitionType=f.dims,
            FlipAngle=90.0 if f.dims == "2D" else 120.0,
        ),
        integer=prof.integer_storage,
    )
    stats_targets.append(("FLAIR", flair, g, s2s, "normalised"))
    _rater_lesion_mask(root, key, lesion, tpl, g, s2s)

    # MP2RAGE: complex inversions share coil field and phase; UNI and the scanner's T1 map.
    g = grid("MP2RAGE")
    s2s = motion_of("MP2RAGE")
    blocks = [(c.pd, mp2(c.t1_ms, b1)) for c in qmaps]
    sig1, sig2 = (sum(pd * s[i] for pd, s in blocks) * SIGNAL_SCALE for i in (0, 1))
    field = acq.smooth_field_on_grid(rng, g, prof.bias_amplitude)
    phase = np.exp(1j * acq.smooth_field_on_grid(rng, g, 0.5)).astype(np.complex64)
    sigma = wm_level(sig2) / (prof.snr * 1.2 * gain("MP2RAGE") * quality)
    c1 = acq.add_complex_noise(rng, acq.acquire(sig1, tpl.affine, g, s2s) * field * phase, sigma)
    c2 = acq.add_complex_noise(rng, acq.acquire(sig2, tpl.affine, g, s2s) * field * phase, sigma)
    u = uni(c1, c2)
    t1_ms = t1_from_uni(u, prof.mp2rage)
    p = prof.mp2rage
    mp_side = dict(
        RepetitionTimePreparation=p.tr_ms / 1000,
        RepetitionTimeExcitation=p.echo_spacing_ms / 1000,
        NumberShots=p.n_excitations,
        InversionTime=None,
        FlipAngle=None,
        EchoTime=0.003,
        MRAcquisitionType="3D",
        SliceThickness=g.psf_fwhm_mm[2],
    )
    for inv, c in ((1, c1), (2, c2)):
        side = dict(mp_side, InversionTime=p.ti_ms[inv - 1] / 1000, FlipAngle=p.flip_deg[inv - 1])
        _store(raw.image(key, f"inv{inv}"), np.abs(c), g.affine, _sidecar(prof, **side), integer=prof.integer_storage)
    uni_img = ((u + 0.5) * 4095.0).astype(np.float32)
    _store(
        raw.image(key, "UNIT1"),
        uni_img,
        g.affine,
        _sidecar(prof, **dict(mp_side, InversionTime=list(np.array(p.ti_ms) / 1000), FlipAngle=list(p.flip_deg))),
        integer=True if prof.integer_storage else None,
    )
    t1_out = t1_ms.copy()
    if prof.nan_background:
        t1_out[np.abs(c2) < 3 * sigma] = np.nan
    scale = 1000.0 if prof.t1map_units == "s" else 1.0
    _store(
        raw.image(key, "T1map"),
        t1_out / scale,
        g.affine,
        _sidecar(
            prof,
            Units=prof.t1map_units,
            EstimationMethod="MP2RAGE lookup table (scanner)",
            **dict(mp_side, InversionTime=list(np.array(p.ti_ms) / 1000), FlipAngle=list(p.flip_deg)),
        ),
        integer=None,
    )
    stats_targets.append(("T1map", t1_ms, g, s2s, "raw"))

    # MT pair and MTR map.
    g = grid("MT")
    s2s = motion_of("MT")
    pairs = [mt_pair(c.t1_ms, c.pd, c.mtr_pu, tr_ms=prof.mt_tr_ms, flip_deg=prof.mt_flip_deg, b1=b1) for c in qmaps]
    off, on = (sum(pair[i] for pair in pairs) for i in (0, 1))
    field = acq.smooth_field_on_grid(rng, g, prof.bias_amplitude)
    sig_off = off * SIGNAL_SCALE
    sigma = wm_level(sig_off) / (prof.snr * 1.1 * gain("MT") * quality)
    m_off = np.abs(acq.add_complex_noise(rng, acq.acquire(sig_off, tpl.affine, g, s2s) * field, sigma))
    m_on = np.abs(acq.add_complex_noise(rng, acq.acquire(on * SIGNAL_SCALE, tpl.affine, g, s2s) * field, sigma))
    for state, img in (("on", m_on), ("off", m_off)):
        _store(
            raw.image(key, f"mt{state}"),
            img,
            g.affine,
            _sidecar(
                prof,
                MTState=state == "on",
                FlipAngle=prof.mt_flip_deg,
                RepetitionTime=prof.mt_tr_ms / 1000,
                EchoTime=0.004,
                MRAcquisitionType="3D",
                SliceThickness=g.psf_fwhm_mm[2],
            ),
            integer=prof.integer_storage,
        )
    mtr = mtr_map(m_off, m_on, min_signal=4 * sigma)
    mtr_scale = 100.0 if prof.mtr_units == "fraction" else 1.0
    _store(raw.image(key, "MTRmap"), mtr / mtr_scale, g.affine, _sidecar(prof, Units=prof.mtr_units), integer=None)
    stats_targets.append(("MTR", mtr, g, s2s, "raw"))

    write_json(
        truth.subject_to_scanner(key),
        {
            "Description": "4x4 matrices mapping subject-space world mm to each acquisition's scanner world mm",
            "SubjectToScanner": poses,
            "Scanner": prof.name,
            "QualityFactor": quality,
            "MotionGhosting": motion,
        },
    )

    # Stats and samples on each image's own grid (truth brought there with nearest neighbour).
    # The report's voxel samples draw from their own stream (one fixed draw from ``rng``): how many
    # voxels they pick from depends on the grid, and the next session's pose and noise must not.
    sample_rng = np.random.default_rng(int(rng.integers(2**63)))
    for modality, img, g, s2s, mode in stats_targets:
        tis, pat = (
            resample(lab, tpl.affine, g.shape, g.affine, interpolation="nearest", transform=np.linalg.inv(s2s)) for lab in (tissue, patho)
        )
        wm_nawm = (tis == 3) & (pat == 0)
        norm = float(np.median(img[wm_nawm])) if mode == "normalised" and wm_nawm.any() else 1.0
        for name, mask in (("CSF", tis == 1), ("GM", tis == 2), ("NAWM", wm_nawm), ("lesion", pat == 1), ("DAWM", pat == 2)):
            vals = img[mask] / norm
            summary.stats.append(
                {
                    "session_id": session_id_of(ses),
                    "scanner": prof.name,
                    "group": part.group,
                    "modality": modality,
                    "tissue": name,
                    "mean": float(vals.mean()) if vals.size else None,
                    "sd": float(vals.std()) if vals.size else None,
                    "n": int(vals.size),
                }
            )
        # Samples are relative to the session's NAWM median for every modality, so the pooled AUC
        # measures within-session separability (T1 in ms differs between 1.5 T and 3 T).
        nawm_median = float(np.median(img[wm_nawm])) if wm_nawm.any() else 1.0
        sam = _samples(sample_rng, img, pat, tis == 3, pat == 1, nawm_median)
        if "DAWM" in sam:
            summary.samples.append({"session_id": session_id_of(ses), "scanner": prof.name, "modality": modality, **sam})
    return row
