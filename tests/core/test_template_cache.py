"""The MNI template's on-disk cache: an exact copy, rebuilt when unreadable, optional when the
cache folder cannot be written."""

from __future__ import annotations

import numpy as np
import pytest

from dawm.image import template as tpl_mod

FIELDS = ("t1", "gm", "wm", "csf", "brain_mask")


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(tpl_mod.CACHE_ENV, str(tmp_path / "cache"))
    tpl_mod.load_template.cache_clear()
    yield tmp_path / "cache"
    tpl_mod.load_template.cache_clear()


def _same(a: tpl_mod.Template, b: tpl_mod.Template) -> None:
    for name in FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        assert y.dtype == np.float32 and y.shape == x.shape
        assert np.array_equal(x, y), name
        assert not y.flags.writeable
    assert np.array_equal(a.affine, b.affine)


def test_cached_template_is_the_nilearn_one(fresh_cache):
    built = tpl_mod.load_template(2)
    files = list(fresh_cache.glob("*.npz"))
    assert [f.name for f in files] == [tpl_mod._cache_path(2).name]
    assert ".2mm." in files[0].name and ".nilearn" in files[0].name and f".v{tpl_mod.CACHE_VERSION}." in files[0].name
    tpl_mod.load_template.cache_clear()
    _same(built, tpl_mod.load_template(2))  # now read from the copy
    # The CSF is derived, not stored: the copy stays small.
    assert files[0].stat().st_size < 20e6


def test_unreadable_cache_is_rebuilt(fresh_cache):
    built = tpl_mod.load_template(2)
    path = tpl_mod._cache_path(2)
    path.write_bytes(b"not an npz")
    tpl_mod.load_template.cache_clear()
    _same(built, tpl_mod.load_template(2))
    with np.load(path) as npz:  # rewritten whole
        assert "t1.array" in npz or "t1.codes" in npz


def test_unwritable_cache_folder_is_not_an_error(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder would go")
    monkeypatch.setenv(tpl_mod.CACHE_ENV, str(blocker / "cache"))
    tpl_mod.load_template.cache_clear()
    try:
        tpl = tpl_mod.load_template(2)
    finally:
        tpl_mod.load_template.cache_clear()
    assert tpl.t1.shape == (99, 117, 95)
    assert not (blocker / "cache").exists()


@pytest.mark.parametrize("values", [np.array([0.0, 0.25, 1.0]), np.linspace(0, 1, 1000)])
def test_pack_round_trip_is_exact(values):
    rng = np.random.default_rng(0)
    a = rng.choice(values, size=(7, 5, 3)).astype(np.float32)
    packed = tpl_mod._pack(a)
    assert ("codes" in packed) == (np.unique(a).size <= 256)
    restored = tpl_mod._unpack({f"x.{k}": v for k, v in packed.items()}, "x")
    assert restored.dtype == np.float32 and np.array_equal(restored, a)


def test_truncated_cache_is_rebuilt(fresh_cache):
    built = tpl_mod.load_template(2)
    path = tpl_mod._cache_path(2)
    path.write_bytes(path.read_bytes()[:1000])  # a zip cut short: BadZipFile, not ValueError
    tpl_mod.load_template.cache_clear()
    _same(built, tpl_mod.load_template(2))
