import nibabel as nib
import numpy as np
import pytest

from dawm.simulate import anatomy
from dawm.simulate.acquisition import acquire, add_complex_noise, ghosting, make_grid, rigid_matrix


def test_integrated_velocity_is_diffeomorphic():
    rng = np.random.default_rng(0)
    shape = (40, 44, 36)
    disp = anatomy.integrate_velocity(anatomy.random_velocity(rng, shape, 2.0, amplitude_mm=4.0), shape)
    assert disp.shape == (3,) + shape
    jac = np.stack([np.stack(np.gradient(disp[i])) for i in range(3)]) + np.eye(3)[:, :, None, None, None]
    det = np.linalg.det(np.moveaxis(jac, (0, 1), (-2, -1)))
    assert det.min() > 0, "the warp must not fold"
    assert 0.5 < np.sqrt((disp**2).sum(0)).mean() * 2.0 < 10.0


@pytest.mark.parametrize(
    "orientation,storage,codes",
    [
        ("axial", "RAS", ("R", "A", "S")),
        ("axial", "LPS", ("L", "P", "S")),
        ("sagittal", "RAS", ("A", "S", "R")),
        ("sagittal", "LPS", ("P", "S", "L")),
    ],
)
def test_grid_orientation_and_slices(orientation, storage, codes):
    g = make_grid((0.9, 0.9, 5.0), (230.0, 230.0, 150.0), orientation=orientation, storage=storage, oblique_deg=10.0, slice_gap_mm=1.0)
    assert nib.aff2axcodes(g.affine) == codes
    np.testing.assert_allclose(np.linalg.norm(g.affine[:3, :3], axis=0), [0.9, 0.9, 6.0])
    assert g.psf_fwhm_mm[2] == 5.0
    assert g.shape[2] == 25


def test_acquire_puts_a_point_where_the_pose_says():
    sub_aff = np.eye(4)
    sub_aff[:3, 3] = [-20, -20, -20]
    sig = np.zeros((41, 41, 41), np.float32)
    sig[30, 20, 20] = 1.0  # world (10, 0, 0)
    pose = rigid_matrix([0, 0, 90], [0, 0, 0])  # rotate 90 deg about z: (10,0,0) -> (0,10,0)
    g = make_grid((1.0, 1.0, 1.0), (41.0, 41.0, 41.0), centre_mm=(0, 0, 0))
    img = acquire(sig, sub_aff, g, pose)
    peak = np.unravel_index(np.argmax(img), img.shape)
    world = g.affine[:3, :3] @ np.array(peak) + g.affine[:3, 3]
    np.testing.assert_allclose(world, [0, 10, 0], atol=1.0)


def test_noise_is_rician_and_ghosting_keeps_energy():
    rng = np.random.default_rng(1)
    bg = np.abs(add_complex_noise(rng, np.zeros((50, 50, 50), np.complex64), 2.0))
    assert bg.mean() == pytest.approx(2.0 * np.sqrt(np.pi / 2), rel=0.02)  # Rayleigh mean
    img = np.zeros((32, 32, 8), np.complex64)
    img[10:20, 10:20] = 1
    ghosted = ghosting(rng, img, 0.5)
    assert np.sum(np.abs(ghosted) ** 2) == pytest.approx(np.sum(np.abs(img) ** 2), rel=1e-4)
    outside = np.abs(ghosted)[:, :8].sum()
    assert outside > 0.01, "ghosts appear outside the object along the phase axis"


def test_deep_grey_matter_splits_into_thalamus_and_striatum():
    """The template's deep GM is thalamic inside the thalamus box and striatal in the caudate and
    putamen; cortex has neither."""
    tpl = anatomy.template_space(2.0)
    inv = np.linalg.inv(tpl.affine)

    def at(mm):
        return tuple(np.rint(inv[:3, :3] @ np.asarray(mm, float) + inv[:3, 3]).astype(int))

    thalamus, putamen, caudate, cortex = at([-11, -18, 7]), at([-25, 2, 0]), at([-13, 12, 10]), at([-40, -20, 55])
    assert tpl.deep_gm[thalamus] > 0.3 and tpl.striatum[thalamus] == 0
    assert tpl.striatum[putamen] > 0.3 and tpl.deep_gm[putamen] == 0
    assert tpl.striatum[caudate] > 0.3
    assert tpl.striatum[cortex] == 0 and tpl.deep_gm[cortex] == 0 and tpl.gm[cortex] > 0.3
    total = tpl.gm + tpl.wm + tpl.csf + tpl.deep_gm + tpl.striatum
    assert float(total.max()) <= 1.0 + 1e-4


def test_a_coarser_rendition_averages_the_1mm_protocols_noise():
    """SNR gain of a rendition = sqrt(voxel-volume ratio to the 1 mm protocol): exactly 1 at 1 mm
    (so 1 mm cohorts are unchanged), 2*sqrt(2) for 3D images at 2 mm, 2 for a 3 mm-slice 2D FLAIR
    whose slice thickness a 2 mm rendition keeps."""
    from dawm.simulate.scanners import DEFAULT_PROFILES
    from dawm.simulate.subject import acquisition_voxel_mm, rendition_snr_gain

    for prof in DEFAULT_PROFILES:
        for kind in ("T1w", "FLAIR", "MP2RAGE", "MT"):
            assert rendition_snr_gain(prof, kind, 1.0) == 1.0
            assert rendition_snr_gain(prof, kind, 2.0) > rendition_snr_gain(prof, kind, 1.5) > 1.0
        assert rendition_snr_gain(prof, "T1w", 2.0) == pytest.approx(2**1.5)
        assert acquisition_voxel_mm(prof, "MT", 2.0) == (3.0, 3.0, 3.0)
        if prof.flair.dims == "2D" and prof.flair.voxel_mm[2] >= 2.0:
            assert acquisition_voxel_mm(prof, "FLAIR", 2.0)[2] == prof.flair.voxel_mm[2]
            assert rendition_snr_gain(prof, "FLAIR", 2.0) == pytest.approx(2.0)
