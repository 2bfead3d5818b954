import gzip

import nibabel as nib
import numpy as np
import pytest

from dawm.errors import InputError
from dawm.image.io import load_volume, save_volume
from dawm.image.units import mtr_to_percent, t1_to_ms


def _affine():
    aff = np.diag([-1.0, -1.0, 2.0, 1.0])  # LPS-stored, anisotropic
    aff[:3, 3] = [10, 20, -30]
    return aff


def test_round_trip_with_int16_scaling(tmp_path):
    data = np.linspace(0, 1234.5, 4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    path = save_volume(data, _affine(), tmp_path / "x.nii.gz", dtype=np.int16, scaled=True)
    img = nib.load(path)
    assert img.get_data_dtype() == np.int16
    slope = float(img.dataobj.slope)
    assert slope != 1.0
    vol = load_volume(path)
    np.testing.assert_allclose(vol.data, data, atol=slope)
    np.testing.assert_allclose(vol.affine, _affine())
    np.testing.assert_allclose(vol.spacing_mm, [1, 1, 2])


def test_nan_are_zeroed_and_counted(tmp_path):
    data = np.ones((3, 3, 3), np.float32)
    data[0, 0, 0] = np.nan
    data[1, 1, 1] = np.inf
    vol = load_volume(save_volume(data, np.eye(4), tmp_path / "n.nii.gz"))
    assert vol.n_nonfinite == 2 and np.isfinite(vol.data).all() and vol.data[0, 0, 0] == 0


def test_singleton_4d_is_squeezed_and_true_4d_refused(tmp_path):
    p = tmp_path / "s.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((3, 3, 3, 1), np.float32), np.eye(4)), p)
    assert load_volume(p).shape == (3, 3, 3)
    q = tmp_path / "f.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((3, 3, 3, 4), np.float32), np.eye(4)), q)
    with pytest.raises(InputError, match=r"f\.nii\.gz.*4D"):
        load_volume(q)


def test_empty_missing_and_corrupt_files_name_the_file(tmp_path):
    e = save_volume(np.zeros((3, 3, 3), np.float32), np.eye(4), tmp_path / "empty.nii.gz")
    with pytest.raises(InputError, match="empty.nii.gz.*empty"):
        load_volume(e)
    assert load_volume(e, allow_empty=True).shape == (3, 3, 3)
    with pytest.raises(InputError, match="missing.nii.gz.*not found"):
        load_volume(tmp_path / "missing.nii.gz")
    good = save_volume(np.ones((20, 20, 20), np.float32), np.eye(4), tmp_path / "c.nii.gz")
    raw = good.read_bytes()
    good.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputError, match="c.nii.gz"):
        load_volume(good)
    junk = tmp_path / "junk.nii.gz"
    junk.write_bytes(gzip.compress(b"not a nifti header at all" * 20))
    with pytest.raises(InputError, match="junk.nii.gz"):
        load_volume(junk)


def test_units_detection():
    t1_s = np.full((4, 4, 4), 0.85, np.float32)
    ms, unit = t1_to_ms(t1_s)
    assert unit == "s" and np.allclose(ms, 850)
    ms2, unit2 = t1_to_ms(ms)
    assert unit2 == "ms" and np.allclose(ms2, 850)
    assert t1_to_ms(t1_s, declared="s")[1] == "s"
    frac = np.full((4, 4, 4), 0.4, np.float32)
    pu, unit = mtr_to_percent(frac)
    assert unit == "fraction" and np.allclose(pu, 40)
    assert mtr_to_percent(pu)[1] == "percent"
    assert np.allclose(mtr_to_percent(frac, declared="fraction")[0], 40)
    with pytest.raises(InputError):
        t1_to_ms(np.zeros((2, 2, 2)))


def test_atomic_outputs_get_the_usual_permissions(tmp_path):
    """Outputs are readable like any file the user writes (umask), not mkstemp's private 0o600."""
    import os

    from dawm.atomic import atomic_target

    old = os.umask(0o022)
    try:
        with atomic_target(tmp_path / "out.tsv", suffix=".tsv") as tmp:
            tmp.write_text("a\n")
    finally:
        os.umask(old)
    assert (tmp_path / "out.tsv").stat().st_mode & 0o777 == 0o644


def test_closest_canonical_makes_storage_order_irrelevant() -> None:
    """The same voxels stored RAS and LPS (an oblique sagittal grid) give one array and one affine."""
    from dawm.image.io import Volume, as_closest_canonical
    from dawm.simulate.acquisition import make_grid

    ras = make_grid((2.0, 2.0, 2.0), (60.0, 50.0, 40.0), orientation="sagittal", storage="RAS", oblique_deg=12.0)
    lps = make_grid((2.0, 2.0, 2.0), (60.0, 50.0, 40.0), orientation="sagittal", storage="LPS", oblique_deg=12.0)
    data = np.random.default_rng(0).random(ras.shape).astype(np.float32)
    a = as_closest_canonical(Volume(data, ras.affine))
    b = as_closest_canonical(Volume(np.ascontiguousarray(data[::-1, :, ::-1]), lps.affine))
    assert np.array_equal(a.data, b.data) and np.allclose(a.affine, b.affine, atol=1e-9)
    assert nib.aff2axcodes(a.affine) == ("R", "A", "S")
    # every voxel keeps its world position
    ijk = np.array([3, 7, 11])
    world = ras.affine[:3, :3] @ ijk + ras.affine[:3, 3]
    new_ijk = np.rint(np.linalg.solve(a.affine[:3, :3], world - a.affine[:3, 3])).astype(int)
    assert a.data[tuple(new_ijk)] == data[tuple(ijk)]
