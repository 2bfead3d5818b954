"""Training cases (preprocessed images + targets) and subject-level splits.

A :class:`Case` is one session: its preprocessed T1w/FLAIR on the session grid, brain mask, tissue
dseg and, for training, the target dseg (0 normal, 1 lesion, 2 DAWM) of the labels derivative and
its ``label-DAWM_probseg`` (the soft DAWM target) when the labels hold one.
Splits are made over *subjects* (every session of a subject lands in the same split) and stratified
by DAWM in the labels (when known, so that test and validation sets hold subjects with DAWM where
the cohort allows), scanner and clinical group; ``kfold`` deals subjects into ``folds`` folds,
``loso`` holds one scanner out per fold (validation = that scanner's subjects). A split is saved as ``split.json``
in the model folder and reused, so folds trained later (or resumed) see the same subjects.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from dawm.bids.derivative_files import LabelFiles, PreprocessFiles
from dawm.bids.derivatives import write_json
from dawm.bids.layout import RawFiles, SessionKey, participant_id, participant_labels, sidecar_path
from dawm.errors import InputError
from dawm.image.io import load_volume

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Case(SessionKey):
    """One session. ``images``: suffix (``T1w``/``FLAIR``) -> preprocessed image; ``label``: target
    dseg or None (prediction); ``dawm_prob``: the labels' DAWM probability map (0-1) or None;
    ``group``/``scanner`` from participants.tsv / sessions.tsv / sidecars."""

    subject: str
    session: str | None
    images: dict[str, Path]
    brain: Path
    dseg: Path
    preproc_log: Path
    label: Path | None = None
    dawm_prob: Path | None = None
    group: str = "n/a"
    scanner: str = "unknown"
    extra: dict = field(default_factory=dict)


def _read_tsv(path: Path) -> pd.DataFrame | None:
    if not path.exists():
        return None
    try:
        return pd.read_csv(path, sep="\t", na_values="n/a", dtype=str)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: unreadable TSV ({exc})") from None


def _scanner_from_sidecars(preproc_log: Path) -> str | None:
    """Manufacturer/model/field strength of the raw reference image (sidecar), when recorded."""
    try:
        info = json.loads(preproc_log.read_text())
        ref = Path(info["Inputs"][info["Reference"]])
    except (KeyError, json.JSONDecodeError, OSError):
        return None
    sidecar = sidecar_path(ref)
    if not sidecar.exists():
        return None
    meta = json.loads(sidecar.read_text())
    parts = [str(meta[k]) for k in ("Manufacturer", "ManufacturersModelName", "MagneticFieldStrength") if k in meta]
    return "-".join(parts).replace(" ", "") or None


def discover_cases(
    bids_dir: str | Path,
    *,
    preprocess: str = PreprocessFiles.NAME,
    labels: str | None = LabelFiles.NAME,
    preprocess_dir: str | Path | None = None,
    participant_label: list[str] | None = None,
) -> list[Case]:
    """Every complete preprocessed session of ``bids_dir`` (``derivatives/<preprocess>``, or
    ``preprocess_dir``), with its target from ``derivatives/<labels>`` when ``labels`` is given.

    Sessions without a target are skipped (logged) when ``labels`` is given. ``InputError`` when
    the preprocess derivative is missing.
    """
    bids_dir = Path(bids_dir)
    raw = RawFiles(bids_dir)
    pre = PreprocessFiles(preprocess_dir) if preprocess_dir is not None else PreprocessFiles.in_dataset(bids_dir, preprocess)
    if not pre.exists():
        raise InputError(f"{pre.root}: no preprocess derivative (run `dawm preprocess {bids_dir}` first)")
    targets = LabelFiles.in_dataset(bids_dir, labels) if labels else None
    if targets is not None and not targets.exists():
        raise InputError(f"{targets.root}: no label derivative '{labels}' (run `dawm label`, or choose another with --labels)")
    wanted = participant_labels(participant_label)
    participants = _read_tsv(raw.participants)
    part = participants.set_index("participant_id") if participants is not None and "participant_id" in participants else None
    cases: list[Case] = []
    for found in pre.sessions():
        log_file = pre.log(found)
        info = json.loads(log_file.read_text())
        subject, session = info["Subject"], info.get("Session")
        if wanted is not None and subject not in wanted:
            continue
        images = {s: pre.image(found, s) for s in ("T1w", "FLAIR")}
        images = {s: p for s, p in images.items() if p.exists()}
        label = dawm_prob = None
        if targets is not None:
            label = targets.dseg(found)
            if not label.exists():
                log.info("%s: no target in %s, skipped", found.key, targets.root)
                continue
            dawm_prob = targets.dawm_probseg(found)
            dawm_prob = dawm_prob if dawm_prob.exists() else None
        key = participant_id(subject)
        group = scanner = None
        if part is not None and key in part.index:
            group = part.loc[key].get("group")
            scanner = part.loc[key].get("scanner")
        sessions = _read_tsv(raw.sessions_table(subject))
        if sessions is not None and "scanner" in sessions and session:
            row = sessions[sessions.session_id == found.session_id]
            if len(row) and isinstance(row.scanner.iloc[0], str):
                scanner = row.scanner.iloc[0]
        if not isinstance(scanner, str):
            scanner = _scanner_from_sidecars(log_file)
        cases.append(Case(
            subject=subject, session=session, images=images,
            brain=pre.brain_mask(found), dseg=pre.tissue_dseg(found),
            preproc_log=log_file, label=label, dawm_prob=dawm_prob,
            group=group if isinstance(group, str) else "n/a", scanner=scanner if isinstance(scanner, str) else "unknown",
        ))  # fmt: skip
    return cases


# --------------------------------------------------------------------------------------------
# splits
# --------------------------------------------------------------------------------------------


def _subjects(cases: list[Case]) -> dict[str, tuple[str, str]]:
    """subject -> (scanner, group); a subject seen on several scanners takes its first session's."""
    out: dict[str, tuple[str, str]] = {}
    for c in sorted(cases, key=lambda c: c.key):
        out.setdefault(c.subject, (c.scanner, c.group))
    return out


def subjects_with_dawm(cases: list[Case], min_ml: float = 1.0) -> set[str]:
    """The subjects with at least ``min_ml`` of DAWM (label 2) in a session's target dseg (the
    default leaves out the scattered false positives that qMRI labels give controls, 0.5 ml a session)."""
    out = set()
    for c in cases:
        if c.label is not None and c.subject not in out:
            label = load_volume(c.label, allow_empty=True)
            if int((np.rint(label.data) == 2).sum()) * float(np.prod(label.spacing_mm)) / 1000 >= min_ml:
                out.add(c.subject)
    return out


def _deal(subjects: dict[str, tuple[str, str]], n: int, rng: np.random.Generator, dawm: set[str] | None = None) -> list[list[str]]:
    """Deal subjects into ``n`` bins stratum by stratum (DAWM or not when ``dawm`` is given, group,
    scanner), continuing round robin across strata so the bins stay balanced in size and composition.
    Group comes before scanner so that the controls are dealt one after the other into different
    bins (scanner first once put all three controls of a cohort into one validation fold, whose
    checkpoint choice then had no lesion to score)."""
    strata: dict[tuple, list[str]] = defaultdict(list)
    for s, (scanner, group) in sorted(subjects.items()):
        strata[(s in dawm, group, scanner) if dawm is not None else (group, scanner)].append(s)
    bins: list[list[str]] = [[] for _ in range(n)]
    pos = int(rng.integers(n))
    for stratum in sorted(strata):
        members = list(strata[stratum])
        rng.shuffle(members)
        for s in members:
            bins[pos % n].append(s)
            pos += 1
    return [sorted(b) for b in bins]


def make_split(
    cases: list[Case], *, mode: str, folds: int, seed: int, test_fraction: float = 0.0, dawm_subjects: set[str] | None = None
) -> dict:
    """A subject-level split: ``{"mode", "seed", "test": [...], "folds": [{"train", "val", "held_out"}]}``.

    ``test`` (``test_fraction`` of the subjects, stratified) is in no fold. ``dawm_subjects``
    (:func:`subjects_with_dawm`) adds DAWM presence to the strata. ``kfold``: ``folds``
    folds, each subject validated exactly once. ``loso``: one fold per scanner, whose subjects are
    the validation set (``held_out`` names it). ``InputError`` when there are too few subjects.
    """
    subjects = _subjects(cases)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 6]))
    test: list[str] = []
    if test_fraction > 0:
        n_bins = max(2, int(round(1.0 / test_fraction)))
        test = _deal(subjects, n_bins, rng, dawm_subjects)[0]
    pool = {s: v for s, v in subjects.items() if s not in test}
    out_folds: list[dict] = []
    if mode == "kfold":
        if len(pool) < folds:
            raise InputError(f"{len(pool)} subject(s) for {folds} folds: need at least one validation subject per fold")
        bins = _deal(pool, folds, rng, dawm_subjects)
        for k in range(folds):
            out_folds.append({"train": sorted(s for j, b in enumerate(bins) if j != k for s in b), "val": bins[k], "held_out": None})
    elif mode == "loso":
        scanners = sorted({sc for sc, _ in pool.values()})
        if len(scanners) < 2:
            raise InputError(f"leave-one-scanner-out needs subjects from at least two scanners, found {scanners}")
        for sc in scanners:
            out_folds.append(
                {
                    "train": sorted(s for s, (x, _) in pool.items() if x != sc),
                    "val": sorted(s for s, (x, _) in pool.items() if x == sc),
                    "held_out": sc,
                }
            )
    else:
        raise InputError(f"unknown split mode {mode!r} (kfold or loso)")
    return {
        "mode": mode,
        "seed": seed,
        "test": sorted(test),
        "folds": out_folds,
        "subjects": {
            s: {"scanner": sc, "group": g, **({"dawm": s in dawm_subjects} if dawm_subjects is not None else {})}
            for s, (sc, g) in sorted(subjects.items())
        },
    }


def load_or_make_split(
    path: str | Path, cases: list[Case], *, mode: str, folds: int, seed: int, test_fraction: float = 0.0, stratify_dawm: bool = True
) -> dict:
    """The split saved at ``path`` when it exists (checked against ``cases`` and ``mode``), else a
    new one written there (stratified by DAWM in the cases' labels too, unless ``stratify_dawm`` is
    False). ``InputError`` when the saved split does not fit the data."""
    path = Path(path)
    if path.exists():
        split = json.loads(path.read_text())
        if split["mode"] != mode:
            raise InputError(f"{path}: the saved split is {split['mode']}, not {mode}; use another model folder")
        known = set(split["subjects"])
        missing = known - {c.subject for c in cases}
        if missing:
            raise InputError(f"{path}: subjects of the saved split have no data now: {', '.join(sorted(missing))}")
        new = {c.subject for c in cases} - known
        if new:
            log.warning("%d subject(s) not in the saved split are ignored: %s", len(new), ", ".join(sorted(new)))
        return split
    dawm = subjects_with_dawm(cases) if stratify_dawm else None
    split = make_split(cases, mode=mode, folds=folds, seed=seed, test_fraction=test_fraction, dawm_subjects=dawm)
    write_json(path, split)
    return split


def cases_of(cases: list[Case], subjects: list[str]) -> list[Case]:
    """The cases (all sessions) of ``subjects``."""
    keep = set(subjects)
    return [c for c in cases if c.subject in keep]
