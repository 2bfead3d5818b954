"""The derivative file-name contract (:mod:`dawm.bids.derivative_files`): the names on disk, writer
and reader agreeing, discovery, the dataset root of a file, and no file-name literal outside ``bids/``."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import numpy as np
import pytest

import dawm
from dawm.bids.derivative_files import (
    DerivativeFiles,
    LabelFiles,
    MaskFiles,
    PredictFiles,
    PreprocessFiles,
    SegmentationFiles,
    TruthFiles,
)
from dawm.bids.layout import RawFiles, SessionRef, dataset_root, discover_sessions
from dawm.errors import InputError
from dawm.image.io import save_volume

KEY = SessionRef("ms001", "02")
NOSES = SessionRef("x07")


# ---------------------------------------------------------------------------------------------
# the names on disk (these are the files of the derivatives as dawm has always written them)
# ---------------------------------------------------------------------------------------------

EXPECTED = {
    PreprocessFiles: [
        ("log", (), "desc-preproc_log.json"),
        ("image", ("T1w",), "space-session_desc-preproc_T1w.nii.gz"),
        ("image", ("FLAIR",), "space-session_desc-preproc_FLAIR.nii.gz"),
        ("image", ("UNIT1",), "space-session_desc-preproc_UNIT1.nii.gz"),
        ("image", ("T1map",), "space-session_T1map.nii.gz"),
        ("image", ("MTRmap",), "space-session_MTRmap.nii.gz"),
        ("brain_mask", (), "space-session_desc-brain_mask.nii.gz"),
        ("fov_mask", (), "space-session_desc-fov_mask.nii.gz"),
        ("tissue_probseg", ("WM",), "space-session_label-WM_probseg.nii.gz"),
        ("tissue_dseg", (), "space-session_dseg.nii.gz"),
        ("nawm_mask", (), "space-session_label-NAWM_mask.nii.gz"),
        ("lesion_mask", (), "space-session_label-lesion_mask.nii.gz"),
        ("acquisition_xfm", ("MP2RAGE",), "from-MP2RAGE_to-session_mode-image_xfm.json"),
        ("to_template_xfm", (), "from-session_to-MNI152NLin2009cSym_mode-image_xfm.h5"),
        ("from_template_xfm", (), "from-MNI152NLin2009cSym_to-session_mode-image_xfm.h5"),
        ("iqm", (), "desc-iqm_metrics.tsv"),
        ("qc_figure", ("T1w",), "desc-qc_T1w.png"),
    ],
    LabelFiles: [
        ("dseg", (), "space-session_desc-dawm_dseg.nii.gz"),
        ("location_dseg", (), "space-session_desc-location_dseg.nii.gz"),
        ("dawm_probseg", (), "space-session_label-DAWM_probseg.nii.gz"),
        ("zmap", ("MTR",), "space-session_desc-MTRz_statmap.nii.gz"),
        ("volumes", (), "desc-volumes_metrics.tsv"),
        ("log", (), "desc-label_log.json"),
    ],
    PredictFiles: [
        ("dseg", (), "space-session_desc-dawm_dseg.nii.gz"),
        ("probseg", ("lesion",), "space-session_label-lesion_probseg.nii.gz"),
        ("native_dseg", ("FLAIR",), "space-FLAIR_desc-dawm_dseg.nii.gz"),
        ("volumes", (), "desc-dawm_volumes.tsv"),
        ("baseline_xfm", (), "from-session_to-baseline_mode-image_xfm.json"),
        ("baseline_dseg", (), "space-baseline_desc-dawm_dseg.nii.gz"),
        ("baseline_probseg", ("DAWM",), "space-baseline_label-DAWM_probseg.nii.gz"),
        ("transition_dseg", (), "space-baseline_desc-transition_dseg.nii.gz"),
        ("lesion_change_dseg", (), "space-baseline_desc-lesionchange_dseg.nii.gz"),
    ],
    TruthFiles: [
        ("subject_to_scanner", (), "from-subject_to-scanner_mode-image_xfm.json"),
        ("tissue_dseg", (), "space-subject_dseg.nii.gz"),
        ("pathology_dseg", (), "space-subject_desc-pathology_dseg.nii.gz"),
        ("location_dseg", (), "space-subject_desc-location_dseg.nii.gz"),
        ("transition_dseg", (), "space-subject_desc-transition_dseg.nii.gz"),
        ("mask", ("brain",), "space-subject_label-brain_mask.nii.gz"),
        ("dawm_probseg", (), "space-subject_label-DAWM_probseg.nii.gz"),
        ("property_map", ("T2map",), "space-subject_T2map.nii.gz"),
        ("bias_field", ("FLAIR",), "desc-biasfield_FLAIR.nii.gz"),
    ],
    MaskFiles: [("lesion_mask", ("FLAIR",), "space-FLAIR_label-lesion_mask.nii.gz")],
}


@pytest.mark.parametrize("cls", list(EXPECTED))
def test_every_session_file_keeps_its_name_in_the_session_anat_folder(cls: type[DerivativeFiles], tmp_path: Path) -> None:
    files = cls(tmp_path)
    for method, args, tail in EXPECTED[cls]:
        path = getattr(files, method)(KEY, *args)
        assert path == tmp_path / "sub-ms001" / "ses-02" / "anat" / f"sub-ms001_ses-02_{tail}", method
        assert getattr(files, method)(NOSES, *args) == tmp_path / "sub-x07" / "anat" / f"sub-x07_{tail}", method


def test_dataset_level_files_and_default_folders(tmp_path: Path) -> None:
    assert PreprocessFiles.in_dataset(tmp_path).root == tmp_path / "derivatives" / "dawm-preprocess"
    assert LabelFiles.in_dataset(tmp_path).root == tmp_path / "derivatives" / "dawm-label"
    assert TruthFiles.in_dataset(tmp_path).root == tmp_path / "derivatives" / "dawm-truth"
    assert MaskFiles.in_dataset(tmp_path).root == tmp_path / "derivatives" / "lesion-masks"
    assert LabelFiles.in_dataset(tmp_path, "dawm-label-t1").root == tmp_path / "derivatives" / "dawm-label-t1"
    pre, lab, pred, truth = PreprocessFiles(tmp_path), LabelFiles(tmp_path), PredictFiles(tmp_path), TruthFiles(tmp_path)
    names = {
        pre.config: "preprocess_config.json",
        pre.tissue_lut: "dseg.tsv",
        pre.group_iqm: "group_iqm.tsv",
        pre.provenance: "provenance.json",
        pre.description: "dataset_description.json",
        lab.config: "label_config.json",
        lab.normative_model: "normative_model.json",
        lab.volumes_table: "volumes.tsv",
        lab.dawm_lut: "desc-dawm_dseg.tsv",
        lab.location_lut: "desc-location_dseg.tsv",
        pred.volumes_table: "volumes.tsv",
        pred.common_fov_table: "volumes_common_fov.tsv",
        pred.transitions_table: "transitions.tsv",
        truth.config: "dawm_simulate_config.json",
        truth.volumes_table: "volumes.tsv",
        truth.report: "simulation_report.tsv",
        truth.edss_model: "edss_model.json",
        truth.lut(): "dseg.tsv",
        truth.lut("pathology"): "desc-pathology_dseg.tsv",
        truth.lut("transition"): "desc-transition_dseg.tsv",
    }
    for path, name in names.items():
        assert path == tmp_path / name
    assert pred.preprocess.root == tmp_path / "derivatives" / "dawm-preprocess"
    assert truth.logs == tmp_path / "logs"
    assert pred.qc_page(KEY) == tmp_path / "sub-ms001" / "ses-02" / "sub-ms001_ses-02_desc-qc_report.html"
    assert pred.qc_page(NOSES) == tmp_path / "sub-x07" / "sub-x07_desc-qc_report.html"
    assert pred.status("ms001") == tmp_path / "sub-ms001" / "sub-ms001_status.tsv"
    assert pred.transitions("ms001") == tmp_path / "sub-ms001" / "sub-ms001_desc-longitudinal_transitions.tsv"
    assert truth.simulation("ms001") == tmp_path / "sub-ms001" / "sub-ms001_simulation.json"
    assert pre.sidecar(pre.image(KEY, "T1map")).name == "sub-ms001_ses-02_space-session_T1map.json"
    assert pred.sidecar(pred.transitions_table).name == "transitions.json"


def test_raw_names_are_the_inverse_of_discovery(tmp_path: Path) -> None:
    raw = RawFiles(tmp_path)
    assert raw.image(KEY, "inv2").name == "sub-ms001_ses-02_inv-2_part-mag_MP2RAGE.nii.gz"
    assert raw.image(KEY, "mtoff").name == "sub-ms001_ses-02_flip-1_mt-off_MTS.nii.gz"
    assert raw.sessions_table("ms001") == tmp_path / "sub-ms001" / "sub-ms001_sessions.tsv"
    assert raw.participants == tmp_path / "participants.tsv"
    (tmp_path / "dataset_description.json").write_text("{}")
    roles = ("T1w", "FLAIR", "UNIT1", "T1map", "inv1", "inv2", "mton", "mtoff", "MTRmap")
    for role in roles:
        save_volume(np.ones((2, 2, 2), np.float32), np.eye(4), raw.image(KEY, role))
    (found,) = discover_sessions(tmp_path)
    assert (found.subject, found.session) == ("ms001", "02")
    assert found.images == {role: raw.image(KEY, role) for role in roles}


# ---------------------------------------------------------------------------------------------
# writer and readers agree; discovery; the dataset root of a file
# ---------------------------------------------------------------------------------------------


def _touch(path: Path, text: str = "{}") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_discovery_finds_what_the_writer_named(tmp_path: Path) -> None:
    pre = PreprocessFiles(tmp_path / "pre")
    for key in (KEY, NOSES, SessionRef("ms001", "01")):
        _touch(pre.log(key))
    _touch(pre.brain_mask(SessionRef("hc001", "01")))  # no log: not a complete session
    assert pre.sessions() == [SessionRef("ms001", "01"), KEY, NOSES]
    assert all(pre.is_complete(k) for k in pre.sessions()) and not pre.is_complete(SessionRef("hc001", "01"))

    pred = PredictFiles(tmp_path / "pred")
    _touch(pred.dseg(KEY))
    _touch(pred.preprocess.log(NOSES))  # the nested preprocessing is not a predicted session
    assert pred.sessions() == [KEY]
    assert pred.dseg_files() == {"sub-ms001/ses-02/anat/sub-ms001_ses-02_space-session_desc-dawm_dseg.nii.gz": pred.dseg(KEY)}
    assert SegmentationFiles.location_of(pred.dseg(KEY)) == pred.location_dseg(KEY)
    _touch(pred.volumes(KEY)), _touch(pred.status("ms001"))
    _touch(pred.baseline_dseg(KEY)), _touch(pred.sidecar(pred.baseline_dseg(KEY))), _touch(pred.baseline_xfm(KEY))
    assert pred.longitudinal_files(KEY) == sorted([pred.baseline_dseg(KEY), pred.sidecar(pred.baseline_dseg(KEY))]) + [
        pred.baseline_xfm(KEY)
    ]
    assert pred.sessions() == [KEY]  # the baseline-grid maps are not sessions
    assert pred.volume_tables() == [pred.volumes(KEY)] and pred.status_tables() == [pred.status("ms001")]

    truth = TruthFiles(tmp_path / "truth")
    _touch(truth.subject_to_scanner(KEY)), _touch(truth.simulation("ms001"))
    assert truth.sessions() == [KEY] and truth.simulations() == [truth.simulation("ms001")]


def test_the_dataset_root_of_a_file_replaces_folder_arithmetic(tmp_path: Path) -> None:
    for files in (PreprocessFiles(tmp_path / "a"), LabelFiles(tmp_path / "sub-b"), PredictFiles(tmp_path / "c")):
        for key in (KEY, NOSES):
            assert dataset_root(files.marker(key)) == files.root
            assert type(files).of_file(files.marker(key)) == files
    with pytest.raises(InputError, match="not inside a sub-ms001 folder"):
        dataset_root(tmp_path / "sub-ms001_ses-02_dseg.nii.gz")


def test_readers_use_the_paths_the_writer_uses(tmp_path: Path) -> None:
    """model.data, the label stage, evaluate, QC and longitudinal find the files at the objects' paths."""
    from dawm.evaluate.inputs import find_dsegs
    from dawm.label.pipeline import label_log_path, preprocessed
    from dawm.longitudinal.sessions import predicted_sessions
    from dawm.model.data import discover_cases
    from dawm.preprocess.pipeline import log_path, session_dir
    from dawm.qc.session import QcSession

    bids = tmp_path / "bids"
    _touch(RawFiles(bids).description)
    pre, labels = PreprocessFiles.in_dataset(bids), LabelFiles.in_dataset(bids)
    _touch(pre.log(KEY), '{"Subject": "ms001", "Session": "02", "Reference": "T1w", "Inputs": {}}')
    for path in (
        pre.image(KEY, "T1w"),
        pre.image(KEY, "FLAIR"),
        pre.brain_mask(KEY),
        pre.fov_mask(KEY),
        labels.dseg(KEY),
        labels.dawm_probseg(KEY),
    ):
        _touch(path, "")
    assert log_path(pre.root, KEY) == pre.log(KEY) and session_dir(pre.root, KEY) == pre.anat_dir(KEY)
    assert preprocessed(pre.root, KEY) and label_log_path(labels.root, KEY) == labels.log(KEY)
    (case,) = discover_cases(bids)
    assert (case.images, case.brain, case.dseg, case.preproc_log) == (
        {"T1w": pre.image(KEY, "T1w"), "FLAIR": pre.image(KEY, "FLAIR")},
        pre.brain_mask(KEY),
        pre.tissue_dseg(KEY),
        pre.log(KEY),
    )
    assert (case.label, case.dawm_prob) == (labels.dseg(KEY), labels.dawm_probseg(KEY))
    assert find_dsegs(labels.root, "reference") == labels.dseg_files()

    pred = PredictFiles(tmp_path / "pred")
    _touch(pred.description, json.dumps({"SourceDatasets": [{"URL": str(bids)}]}))
    for path in (pred.dseg(KEY), pred.probseg(KEY, "DAWM")):
        _touch(path, "")
    qc = QcSession.from_key(KEY.key, pred.root)
    assert qc.preprocess_root == pre.root
    assert (qc.dseg, qc.probseg("DAWM"), qc.qc_page, qc.brain_mask, qc.iqm) == (
        pred.dseg(KEY),
        pred.probseg(KEY, "DAWM"),
        pred.qc_page(KEY),
        pre.brain_mask(KEY),
        pre.iqm(KEY),
    )
    (session,) = predicted_sessions(pred.root)["ms001"]
    assert (session.dseg, session.probseg, session.images, session.brain, session.fov, session.reference) == (
        pred.dseg(KEY),
        {"DAWM": pred.probseg(KEY, "DAWM")},
        {"T1w": pre.image(KEY, "T1w"), "FLAIR": pre.image(KEY, "FLAIR")},
        pre.brain_mask(KEY),
        pre.fov_mask(KEY),
        "T1w",
    )


# ---------------------------------------------------------------------------------------------
# no file-name literal outside dawm.bids
# ---------------------------------------------------------------------------------------------

#: The BIDS entities of dawm's file names (and the raw ones it reads).
_ENTITY = r"(?:sub|ses|desc|space|label|from|to|mode|inv|part|mt|flip|acq|rec|res|echo)"
#: What a BIDS file name written by hand looks like inside a string literal.
LITERAL_PATTERNS = {
    # key-value at a name's start or after ``_``/``*``/``/``, its value ending the name part (or an f-string's
    # constant part ending at the key: f"sub-{x}")
    "entity": re.compile(rf"(?:^|[_*/]){_ENTITY}-(?:$|(?:[A-Za-z0-9]+|\*|%s)(?:[_.*{{]|$))"),
    "derivative folder": re.compile(r"\bdawm-(?:preprocess|label|truth|predict)\b"),
    "suffix and extension": re.compile(
        r"_(?:dseg|probseg|mask|log|xfm|metrics|volumes|statmap|status|transitions|report|sessions|"
        r"simulation|T1w|FLAIR|UNIT1|T1map|MTRmap|MP2RAGE|MTS)\.(?:nii\.gz|nii|json|tsv|h5|html|png)\b"
    ),
    "BIDS top-level file": re.compile(
        r"^(?:derivatives|dataset_description\.json|participants\.(?:tsv|json))$|"
        r"^(?:preprocess_config|label_config|normative_model|dawm_simulate_config|edss_model)\.json$|"
        r"^(?:group_iqm|volumes_common_fov|simulation_report)\.tsv$"
    ),
}
#: Keyword arguments whose strings are documentation (CLI help, pydantic field descriptions).
DOC_KEYWORDS = {"help", "description"}


def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                out.add(id(first.value))
    return out


def name_literals(source: str) -> list[tuple[int, str]]:
    """``(line, what)`` for every hand-made file name in Python ``source``: a string literal (docstrings
    and ``help=`` / ``description=`` texts aside) that looks like a BIDS name, a ``.with_(...)`` or
    ``BidsName(...)`` name built entity by entity, and ``.parents[...]`` folder arithmetic."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg in DOC_KEYWORDS:
            skip |= {id(n) for n in ast.walk(node.value)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            found += [(node.lineno, f"{what}: {node.value!r}") for what, rx in LITERAL_PATTERNS.items() if rx.search(node.value)]
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr == "with_" or isinstance(func, ast.Name) and func.id == "BidsName":
                found.append((node.lineno, "a name built entity by entity"))
        elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr == "parents":
            found.append((node.lineno, "parents[...] path arithmetic"))
    return found


def test_the_literal_check_finds_real_literals() -> None:
    bad = """
def f(root, key, base, path):
    a = root / f"{key}_space-session_desc-brain_mask.nii.gz"
    b = root / "derivatives" / "dawm-label"
    c = sorted(root.glob("sub-*/**/anat/*_desc-preproc_log.json"))
    d = base.with_(desc="dawm", suffix="dseg")
    e = path.parents[3]
    g = f"sub-{key}"
    h = root / "participants.tsv"
"""
    what = [w for _, w in name_literals(bad)]
    assert sum(w.startswith("entity") for w in what) >= 3
    assert any(w.startswith("derivative folder") for w in what) and any(w.startswith("suffix and extension") for w in what)
    assert sum(w.startswith("BIDS top-level file") for w in what) == 2
    assert "a name built entity by entity" in what and "parents[...] path arithmetic" in what
    good = '''
def f(files, key):
    """Reads ``sub-X_ses-Y_space-session_desc-brain_mask.nii.gz`` from derivatives/dawm-preprocess."""
    opt = Option(None, help="default BIDS_DIR/derivatives/dawm-label")
    return files.brain_mask(key), "a 1-mm grid", "from-scratch training", "see the label-wise table"
'''
    assert name_literals(good) == []


def test_no_bids_file_name_literal_outside_the_bids_package() -> None:
    src = Path(dawm.__file__).parent
    offenders = []
    for path in sorted(src.rglob("*.py")):
        rel = path.relative_to(src)
        if rel.parts[0] == "bids":
            continue
        offenders += [f"{rel}:{line}: {what}" for line, what in name_literals(path.read_text())]
    assert not offenders, "file names belong to dawm.bids.derivative_files / dawm.bids.layout:\n" + "\n".join(offenders)
