import numpy as np
import pytest

from dawm.image.resample import isotropic_grid, resample_to_grid, voxel_sizes
from dawm.image.sitk_bridge import from_sitk, ras_transform_to_sitk, sitk_transform_to_ras, to_sitk
from dawm.simulate.acquisition import rigid_matrix


def _oblique_lps_affine():
    aff = np.eye(4)
    aff[:3, :3] = rigid_matrix([10, -5, 3], [0, 0, 0])[:3, :3] @ np.diag([-0.9, -0.9, 4.0])
    aff[:3, 3] = [50, 60, -20]
    return aff


def test_sitk_round_trip_keeps_geometry():
    aff = _oblique_lps_affine()
    data = np.random.default_rng(0).random((5, 6, 7)).astype(np.float32)
    back, aff2 = from_sitk(to_sitk(data, aff))
    np.testing.assert_array_equal(back, data)
    np.testing.assert_allclose(aff2, aff, atol=1e-9)


def test_transform_conversion_round_trip():
    m = rigid_matrix([5, 10, -7], [3, -2, 8])
    np.testing.assert_allclose(sitk_transform_to_ras(ras_transform_to_sitk(m)), m, atol=1e-9)


def test_resample_identity_and_known_shift():
    data = np.zeros((20, 20, 20), np.float32)
    data[10, 10, 10] = 1
    aff = np.eye(4)
    same = resample_to_grid(data, aff, data.shape, aff, interpolation="nearest")
    np.testing.assert_array_equal(same, data)
    shift = np.eye(4)
    shift[:3, 3] = [2, 0, 0]  # target world x pulls source world x + 2
    moved = resample_to_grid(data, aff, data.shape, aff, interpolation="linear", transform_ras=shift)
    assert moved[8, 10, 10] == pytest.approx(1.0)


def test_isotropic_grid_covers_anisotropic_fov():
    aff = _oblique_lps_affine()
    shape, iso = isotropic_grid((100, 100, 10), aff, 1.0)
    np.testing.assert_allclose(voxel_sizes(iso), 1.0)
    assert shape == (90, 90, 40)
    # Same axis directions (an oblique acquisition stays oblique).
    np.testing.assert_allclose(iso[:3, :3] / voxel_sizes(iso), aff[:3, :3] / voxel_sizes(aff), atol=1e-9)


def test_bias_field_removal_metric():
    from dawm.simulate.preprocess_accuracy import bias_field_removal

    rng = np.random.default_rng(0)
    true = np.exp(0.3 * rng.standard_normal(1000))
    perfect = bias_field_removal(true, true * 2.5)  # a global scale does not count
    assert perfect["bias_removed"] == pytest.approx(1.0)
    none = bias_field_removal(true, np.ones_like(true))
    assert none["bias_removed"] == pytest.approx(0.0)
    half = bias_field_removal(true, np.sqrt(true))
    assert half["bias_removed"] == pytest.approx(0.5)
