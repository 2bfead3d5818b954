"""The dose-response knob of the simulator: controlled degradation of every scanner profile."""

import nibabel as nib
import numpy as np

from dawm.simulate.cohort import simulate_cohort
from dawm.simulate.config import Degradation, SimulationConfig
from dawm.simulate.scanners import scanner_profiles


def test_default_degradation_changes_nothing() -> None:
    for profile in scanner_profiles(4):
        assert Degradation().apply(profile) == profile
    assert SimulationConfig().degrade == Degradation()


def test_degradation_applies_to_every_profile() -> None:
    d = Degradation(noise=2.0, bias=3.0, motion=0.3, flair_slice_mm=5.0)
    for profile in scanner_profiles(4):
        out = d.apply(profile)
        assert out.snr == profile.snr / 2 and out.bias_amplitude == profile.bias_amplitude * 3
        assert out.motion_amplitude == 0.3
        assert out.flair.dims == "2D" and out.flair.voxel_mm[2] == 5.0


def test_degraded_images_are_thicker_and_noisier(tmp_path) -> None:
    base = SimulationConfig(patients=1, controls=0, sessions=1, scanners=1, resolution_mm=3.0, seed=5)
    images = {}
    for name, degrade in (("native", Degradation()), ("worse", Degradation(noise=4.0, flair_slice_mm=6.0))):
        simulate_cohort(base.model_copy(update={"degrade": degrade}), tmp_path / name)
        images[name] = {s: nib.load(next((tmp_path / name).glob(f"sub-*/ses-*/anat/*_{s}.nii.gz"))) for s in ("T1w", "FLAIR")}
    assert max(images["worse"]["FLAIR"].header.get_zooms()) > max(images["native"]["FLAIR"].header.get_zooms())

    def background_sd(img) -> float:
        data = np.asarray(img.dataobj, dtype=np.float32)
        return float(data[:6, :6, :6].std())  # an air corner: only noise

    assert background_sd(images["worse"]["T1w"]) > 2 * background_sd(images["native"]["T1w"])
