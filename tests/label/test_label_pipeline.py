"""End-to-end ``dawm label`` on a tiny simulated + pre-processed cohort (2 mm): one patient and one
control on one scanner, one session each."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dawm.bids.derivative_files import LabelFiles, PreprocessFiles
from dawm.cli import app
from dawm.image.io import load_volume
from dawm.label.config import LabelConfig
from dawm.label.normative import ControlsNormativeModel
from dawm.label.pipeline import (
    control_null_shapes,
    label_arrays,
    label_dataset,
    null_shape_for,
    prepare_session,
    session_infos,
)
from dawm.preprocess.config import PreprocessConfig
from dawm.preprocess.pipeline import preprocess_dataset
from dawm.simulate.cohort import simulate_cohort
from dawm.simulate.config import SimulationConfig

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("label") / "bids"
    result = simulate_cohort(SimulationConfig.small(patients=1, controls=1, sessions=1, scanners=1, seed=3), root)
    assert not result.failures
    outcomes = preprocess_dataset(root, config=PreprocessConfig(spacing_mm=2.0, iqm=False, qc_figure=False))
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    return root


def test_cli_says_to_preprocess_first(tmp_path: Path) -> None:
    (tmp_path / "dataset_description.json").write_text("{}")
    res = CliRunner().invoke(app, ["label", str(tmp_path)])
    assert res.exit_code == 2 and "run dawm preprocess first" in res.output and "Traceback" not in res.output


@pytest.mark.parametrize("reference", ["controls", "self"])
def test_label_dataset_outputs(cohort: Path, tmp_path: Path, reference: str) -> None:
    out = tmp_path / reference
    # Default rule and threshold: the control must show (almost) no DAWM. On this one-control 2 mm
    # cohort (self reference) its false positives were 0.94-1.02 ml with a plain z 2 rule at 1.69 ml;
    # since a 2 mm rendition has the SNR of the 1 mm protocol averaged (2026-12-03), 1.41 ml against
    # 1.94 ml for the plain z 2 rule: the bound still tells them apart.
    config = LabelConfig(reference=reference)
    outcomes = label_dataset(cohort, output=out, config=config)
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    for name in (
        "dataset_description.json",
        "label_config.json",
        "provenance.json",
        "desc-dawm_dseg.tsv",
        "desc-location_dseg.tsv",
        "volumes.tsv",
    ):
        assert (out / name).exists(), name
    volumes = pd.read_csv(out / "volumes.tsv", sep="\t")
    assert len(volumes) == 2 and {"dawm_ml", "dawm_expected_ml", "lesion_ml", "dawm_periventricular_ml", "reference"} <= set(
        volumes.columns
    )
    control = volumes[volumes.group == "HC"].iloc[0]
    assert control.dawm_ml < 1.7
    # the probability map's expected DAWM volume; the only control has no other control to calibrate
    # its null's shape on (Gaussian fallback: 3.8 ml on this cohort, 12 ml since the rendition SNR), the patient uses the control's
    assert control.dawm_expected_ml >= 0 and volumes[volumes.group != "HC"].iloc[0].dawm_expected_ml >= 0
    for key in ("sub-hc001_ses-01", "sub-ms001_ses-01"):
        sub, ses = key.split("_")
        d = out / sub / ses / "anat"
        dseg = load_volume(d / f"{key}_space-session_desc-dawm_dseg.nii.gz", allow_empty=True)
        assert set(np.unique(dseg.data).astype(int)) <= {0, 1, 2}
        loc = load_volume(d / f"{key}_space-session_desc-location_dseg.nii.gz").data
        assert set(np.unique(loc).astype(int)) <= {0, 1, 2, 3, 4} and (loc == 1).any() and (loc == 4).any()
        assert not np.any((dseg.data == 2) & (loc == 0))  # DAWM only in WM
        prob_path = d / f"{key}_space-session_label-DAWM_probseg.nii.gz"
        prob = load_volume(prob_path, allow_empty=True)
        assert prob.data.dtype == np.float32 and prob.shape == dseg.shape and np.allclose(prob.affine, dseg.affine)
        assert prob.data.min() >= 0 and prob.data.max() <= 1
        assert not np.any((prob.data > 0) & ((loc == 0) | (dseg.data == 1)))  # only in WM, never in lesions
        sidecar = json.loads(prob_path.with_name(prob_path.name.replace(".nii.gz", ".json")).read_text())
        assert sidecar["Units"] == "probability" and "false discovery rate" in sidecar["Description"]
        assert sidecar["NullShape"] == ("gaussian" if key.startswith("sub-hc") else "controls")
        for mod in ("T1", "MTR"):
            assert (d / f"{key}_space-session_desc-{mod}z_statmap.nii.gz").exists()
        metrics = pd.read_csv(d / f"{key}_desc-volumes_metrics.tsv", sep="\t")
        assert list(metrics.location) == ["all", "periventricular", "juxtacortical", "deep", "infratentorial"]
        voxel_ml = float(np.prod(prob.spacing_mm)) / 1000
        assert metrics.dawm_expected_ml[0] == pytest.approx(float(prob.data.sum(dtype=np.float64)) * voxel_ml, rel=1e-3, abs=1e-6)
        log = json.loads((d / f"{key}_desc-label_log.json").read_text())
        assert log["Rule"]["rule"] == "both" and log["Volumes"]["dawm_expected_ml"] == pytest.approx(metrics.dawm_expected_ml[0], abs=1e-4)
        assert f"{key}_space-session_label-DAWM_probseg.nii.gz" in {Path(o).name for o in log["Outputs"]}
    patient_log = json.loads((out / "sub-ms001/ses-01/anat/sub-ms001_ses-01_desc-label_log.json").read_text())
    control_log = json.loads((out / "sub-hc001/ses-01/anat/sub-hc001_ses-01_desc-label_log.json").read_text())
    if reference == "controls":
        assert patient_log["Reference"]["kind"] == "controls"
        assert control_log["Reference"]["kind"] == "self"  # leave-one-out leaves no control: falls back to self
        model = ControlsNormativeModel.load(out / "normative_model.json")
        assert model.has("prisma3t") and model.groups_["prisma3t"].subjects == ["hc001"]
    else:
        assert patient_log["Reference"]["kind"] == "self" and not (out / "normative_model.json").exists()
    # a re-run reuses finished sessions; --force recomputes them
    again = label_dataset(cohort, output=out, config=config)
    assert all(o.result.reused for o in again) and all(np.isfinite(o.result.dawm_expected_ml) for o in again)
    assert not any(o.result.reused for o in label_dataset(cohort, output=out, config=config, participant_label=["ms001"], force=True))
    assert log["Config"] == config.model_dump(mode="json")
    # other settings (or an older dawm's defaults) are not reused: the session is labelled again
    other = config.model_copy(update={"probability_min_cluster_mm3": 0.0})
    redone = label_dataset(cohort, output=out, config=other, participant_label=["ms001"])
    assert redone and not any(o.result.reused for o in redone)
    assert json.loads((out / "sub-ms001/ses-01/anat/sub-ms001_ses-01_desc-label_log.json").read_text())["Config"] == other.model_dump(
        mode="json"
    )


def test_cli_label_runs(cohort: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(
        app, ["label", str(cohort), "--output", str(tmp_path / "cli"), "--reference", "self", "--rule", "chi2", "--threshold", "0.001"]
    )
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "cli" / "label_config.json").read_text())["rule"] == "chi2"


def test_label_session_files_are_the_array_core_s_result(cohort: Path, tmp_path: Path) -> None:
    """label_session = prepare_session (load + prepare_arrays) + label_arrays + write_labelled: the cores run
    again on the loaded sessions give exactly the arrays and volumes written."""
    config = LabelConfig(reference="self")
    out = tmp_path / "self"
    outcomes = {o.name: o for o in label_dataset(cohort, output=out, config=config)}
    pre_root = PreprocessFiles.in_dataset(cohort).root
    infos = session_infos(cohort)
    nulls = control_null_shapes(infos, pre_root, config, None)
    files = LabelFiles(out)
    for info in infos:
        prepared = prepare_session(info, pre_root, config)
        done = label_arrays(
            prepared, config, is_control=info.group == config.control_group, null_shape=null_shape_for(prepared.maps, nulls)
        )
        written = {
            files.dseg(info.inputs): done.dseg,
            files.location_dseg(info.inputs): done.location,
            files.dawm_probseg(info.inputs): done.probability,
            **{files.zmap(info.inputs, m): z for m, z in done.z.items()},
        }
        for path, array in written.items():
            on_disk = np.asarray(nib.load(path).dataobj)
            np.testing.assert_array_equal(on_disk, np.asarray(array).astype(on_disk.dtype), err_msg=path.name)
        result = outcomes[info.key].result
        assert (result.dawm_ml, result.lesion_ml, result.wm_ml) == (done.totals["dawm_ml"], done.totals["lesion_ml"], done.totals["wm_ml"])
        assert result.dawm_expected_ml == done.totals["dawm_expected_ml"]


def test_null_shape_for_prefers_the_group_then_borrows_the_other_groups() -> None:
    """The null shape pools the session's group's other controls; a group without another control
    borrows the other groups' controls (never the subject's own); without any, Gaussian (None)."""
    from types import SimpleNamespace

    one, two, three = (np.full(4, v, np.int64) for v in (1, 2, 3))
    nulls = {"prisma3t": [("hc001", one), ("hc002", two)], "signa15t": [("hc003", three)]}

    def maps(subject: str, group: str):
        return SimpleNamespace(subject=subject, norm_key=group)

    shape = null_shape_for(maps("ms001", "prisma3t"), nulls)
    assert shape.source == "controls" and shape.n_controls == 2 and np.array_equal(shape.counts, one + two)
    shape = null_shape_for(maps("hc001", "prisma3t"), nulls)
    assert shape.source == "controls" and shape.n_controls == 1 and np.array_equal(shape.counts, two)
    shape = null_shape_for(maps("hc003", "signa15t"), nulls)  # its group's only control
    assert shape.source == "controls of other groups" and shape.n_controls == 2 and np.array_equal(shape.counts, one + two)
    shape = null_shape_for(maps("ms009", "achieva3t"), nulls)  # a group without controls
    assert shape.source == "controls of other groups" and shape.n_controls == 3 and np.array_equal(shape.counts, one + two + three)
    assert null_shape_for(maps("hc003", "signa15t"), {"signa15t": [("hc003", three)]}) is None
    assert null_shape_for(maps("ms001", "prisma3t"), None) is None
