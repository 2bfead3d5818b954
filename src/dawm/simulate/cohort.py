"""Simulate a whole cohort: participants, per-subject simulation (in parallel), dataset files, report."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from dawm.bids.derivative_files import MaskFiles, TruthFiles
from dawm.bids.derivatives import atomic_write_text, init_derivative, write_dseg_tsv, write_json, write_tsv
from dawm.bids.layout import RawFiles, participant_id, session_id
from dawm.parallel import Outcome, run_all
from dawm.provenance import provenance
from dawm.simulate.clinical import EDSS_MODEL, Participant, assign_groups, draw_participant
from dawm.simulate.config import SimulationConfig
from dawm.simulate.pathology import TRANSITIONS
from dawm.simulate.report import simulation_report
from dawm.simulate.scanners import scanner_profiles
from dawm.simulate.subject import LOCATION_LABELS, PATHOLOGY_LABELS, TISSUE_LABELS, TRUTH, SubjectSummary, SubjectTask, simulate_subject

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CohortResult:
    root: Path
    participants: pd.DataFrame
    volumes: pd.DataFrame
    report: pd.DataFrame
    failures: list[Outcome]


def draw_participants(config: SimulationConfig) -> list[Participant]:
    """The cohort's participants; scanners assigned round robin within each group."""
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 10_000]))
    profiles = scanner_profiles(config.scanners)
    groups = assign_groups(rng, config.patients)
    people = []
    for i, group in enumerate(groups):
        people.append(draw_participant(rng, f"ms{i + 1:03d}", group, profiles[i % len(profiles)].name, config.dawm_prevalence))
    if people and not any(p.dawm_present for p in people):
        people[0] = replace(people[0], dawm_present=True)  # a cohort with patients always shows some DAWM
    for i in range(config.controls):
        people.append(draw_participant(rng, f"hc{i + 1:03d}", "HC", profiles[i % len(profiles)].name, config.dawm_prevalence))
    return people


def _dataset_files(root: Path, config: SimulationConfig, people: list[Participant]) -> None:
    raw = RawFiles(root)
    write_json(
        raw.description,
        {
            "Name": "dawm simulated MS cohort",
            "BIDSVersion": "1.9.0",
            "DatasetType": "raw",
            "License": "CC0",
            "Authors": ["dawm simulate"],
            "GeneratedBy": [{"Name": "dawm", "Description": "synthetic cohort from the MNI152 2009 template (nilearn)"}],
        },
    )
    atomic_write_text(
        root / "README",
        (
            "Synthetic multiple-sclerosis cohort made by `dawm simulate` (no real patient data).\n"
            "Anatomy: MNI152 2009 templates warped per subject; lesions and diffusely abnormal white matter (DAWM)\n"
            f"with known truth in {TRUTH}. Images from signal equations per scanner profile.\n"
            f"Config: {config.model_dump_json()}\n"
        ),
    )
    table = pd.DataFrame(
        [
            {
                "participant_id": participant_id(p.participant_id),
                "age": p.age,
                "sex": p.sex,
                "group": p.group,
                "disease_duration": p.disease_duration if p.group != "HC" else None,
                "scanner": p.scanner,
            }
            for p in people
        ]
    )
    write_tsv(raw.participants, table)
    write_json(
        raw.participants_json,
        {
            "age": {"Description": "age at the first session", "Units": "year"},
            "sex": {"Description": "sex", "Levels": {"F": "female", "M": "male"}},
            "group": {
                "Description": "clinical group",
                "Levels": {
                    "HC": "healthy control",
                    "RRMS": "relapsing-remitting MS",
                    "SPMS": "secondary progressive MS",
                    "PPMS": "primary progressive MS",
                },
            },
            "disease_duration": {"Description": "years since MS onset at the first session", "Units": "year"},
            "scanner": {"Description": "scanner profile the participant was scanned on"},
            "edss": {
                "Description": "Expanded Disability Status Scale at the first session (simulated: "
                + ", ".join(f"{k}={v}" for k, v in EDSS_MODEL.items())
                + ")"
            },
        },
    )


def simulate_cohort(
    config: SimulationConfig, out_dir: str | Path, *, jobs: int = 1, backend: str = "local", address: str | None = None
) -> CohortResult:
    """Write a BIDS dataset with truth derivatives to ``out_dir``; return tables and failures.

    Subjects whose summary already exists (same config) are not recomputed, so an interrupted
    run resumes.
    """
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    people = draw_participants(config)
    profiles = {p.name: config.headers.apply(config.degrade.apply(p)) for p in scanner_profiles(config.scanners)}
    _dataset_files(root, config, people)
    truth_files = TruthFiles.in_dataset(root)
    init_derivative(truth_files.root, name="dawm simulation truth", description="ground truth of the simulated cohort", source="../..")
    init_derivative(
        MaskFiles.in_dataset(root).root,
        name="lesion masks",
        description="rater-style lesion masks on each session's FLAIR grid "
        "(simulated: truth lesions >= 50 % in a FLAIR voxel, components under 3 voxels missed)",
        source="../..",
    )
    stamp = truth_files.config
    if stamp.exists() and stamp.read_text() != config.model_dump_json(indent=2):
        log.warning("%s holds a cohort made with another config: recomputing every subject", root)
        for old in truth_files.simulations():
            old.unlink()
    atomic_write_text(stamp, config.model_dump_json(indent=2))
    write_json(truth_files.provenance, provenance("simulate", config))
    # The EDSS model as data, for ``dawm evaluate`` (participants.json only describes it in words).
    write_json(
        truth_files.edss_model,
        {
            "Description": "linear model the simulated EDSS was drawn from (plus N(0, noise_sd), "
            "clipped to 0-9.5, rounded to half points); see dawm.simulate.clinical",
            "Coefficients": EDSS_MODEL,
        },
    )
    for desc, labels in (
        (None, TISSUE_LABELS),
        ("pathology", PATHOLOGY_LABELS),
        ("location", LOCATION_LABELS),
        ("transition", TRANSITIONS),
    ):
        write_dseg_tsv(truth_files.lut(desc), labels)

    todo, summaries = [], {}
    for i, p in enumerate(people):
        done = truth_files.simulation(p.participant_id)
        if done.exists():
            summaries[p.participant_id] = SubjectSummary(**json.loads(done.read_text()))
            log.info("%s already simulated, skipped", participant_id(p.participant_id))
        else:
            todo.append(SubjectTask(p, i, config, profiles[p.scanner], str(root)))
    outcomes = run_all(
        simulate_subject,
        todo,
        names=[participant_id(t.participant.participant_id) for t in todo],
        jobs=jobs,
        backend=backend,
        address=address,
        description="simulating subjects",
    )  # type: ignore[arg-type]
    for t, o in zip(todo, outcomes):
        if o.ok:
            summaries[t.participant.participant_id] = o.result
    failures = [o for o in outcomes if not o.ok]

    rows = []
    for p in people:
        s = summaries.get(p.participant_id)
        for ses in s.sessions if s else []:
            rows.append({"participant_id": participant_id(p.participant_id), "group": p.group, **ses})
    volumes = pd.DataFrame(rows)
    write_tsv(truth_files.volumes_table, volumes)
    # participants.tsv gets the baseline EDSS once it is known.
    raw = RawFiles(root)
    part = pd.read_csv(raw.participants, sep="\t", na_values="n/a")
    if not volumes.empty:
        base = volumes[volumes.session_id == session_id("01")].set_index("participant_id")["edss"]
        part["edss"] = part.participant_id.map(base)
    write_tsv(raw.participants, part)
    report = simulation_report([s for s in summaries.values()])
    write_tsv(truth_files.report, report)
    return CohortResult(root, part, volumes, report, failures)
