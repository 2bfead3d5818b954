"""MRIQC-style image-quality metrics: hand-checked definitions and monotonic behaviour."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
from nilearn import datasets
from scipy import ndimage

from dawm.preprocess.quality import DIETRICH_FACTOR, air_mask, image_quality


@pytest.fixture(scope="module")
def anatomy():
    gm = datasets.load_mni152_gm_template(resolution=2).get_fdata()
    wm = datasets.load_mni152_wm_template(resolution=2).get_fdata()
    mask = datasets.load_mni152_brain_mask(resolution=2).get_fdata() > 0
    csf = np.clip(mask - gm - wm, 0, 1)
    t1 = (300 * csf + 600 * gm + 850 * wm) * mask
    t1[ndimage.binary_dilation(mask, iterations=4) & ~mask] = 500  # scalp
    dseg = np.where(mask, np.argmax(np.stack([csf, gm, wm]), 0) + 1, 0).astype(np.uint8)
    i, j, k = np.meshgrid(*[np.linspace(-1, 1, s) for s in mask.shape], indexing="ij")
    shape_field = 0.5 * i + 0.3 * j**2 - 0.2 * k
    return dict(t1=t1, mask=mask, dseg=dseg, shape_field=shape_field)


def _acquire(anatomy, noise, bias=0.0, seed=0):
    rng = np.random.default_rng(seed)
    field = np.exp(bias * anatomy["shape_field"])
    x = anatomy["t1"] * field
    s = noise * 850
    img = np.hypot(x + rng.normal(0, s, x.shape), rng.normal(0, s, x.shape))
    return img, field


def _iqm(anatomy, img, field=None):
    return image_quality(img, brain_mask=anatomy["mask"], tissues=anatomy["dseg"], bias_field=field, spacing_mm=(2.0, 2.0, 2.0))


def test_noise_degrades_metrics(anatomy):
    lo = _iqm(anatomy, _acquire(anatomy, 0.02)[0])
    hi = _iqm(anatomy, _acquire(anatomy, 0.08)[0])
    for key in ("snr_wm", "snr_gm", "snr_total", "snr_dietrich", "cnr", "fber"):
        assert hi[key] < lo[key], key
    for key in ("efc", "cjv"):
        assert hi[key] > lo[key], key
    assert all(np.isfinite(v) for k, v in lo.items() if not k.startswith("inu"))
    # Air noise is Rayleigh: its std is sigma * sqrt((4 - pi) / 2).
    assert lo["sigma_air"] == pytest.approx(0.02 * 850 * math.sqrt((4 - math.pi) / 2), rel=0.05)


def test_bias_increases_inu_range(anatomy):
    img0, f0 = _acquire(anatomy, 0.03, bias=0.1)
    img1, f1 = _acquire(anatomy, 0.03, bias=0.4)
    assert _iqm(anatomy, img1, f1)["inu_range"] > 2 * _iqm(anatomy, img0, f0)["inu_range"]
    assert math.isnan(_iqm(anatomy, img0)["inu_range"])


def test_definitions_on_tiny_array():
    img = np.zeros((30, 30, 30))
    rng = np.random.default_rng(1)
    air = rng.rayleigh(10.0, img.shape)
    img[:] = air
    brain = np.zeros(img.shape, bool)
    brain[10:20, 10:20, 10:20] = True
    dseg = np.zeros(img.shape, np.uint8)
    dseg[10:20, 10:15, 10:20] = 2
    dseg[10:20, 15:20, 10:20] = 3
    img[dseg == 2] = rng.normal(600, 30, (dseg == 2).sum())
    img[dseg == 3] = rng.normal(900, 20, (dseg == 3).sum())
    q = image_quality(img, brain_mask=brain, tissues=dseg, spacing_mm=(1, 1, 1))
    gm, wm = img[dseg == 2], img[dseg == 3]
    assert q["cjv"] == pytest.approx((gm.std() + wm.std()) / abs(wm.mean() - gm.mean()))
    a = air_mask(img, brain, spacing_mm=(1, 1, 1))
    sigma_air = img[a].std()
    assert q["sigma_air"] == pytest.approx(sigma_air)
    cnr = abs(gm.mean() - wm.mean()) / math.sqrt(sigma_air**2 + gm.std() ** 2 + wm.std() ** 2)
    assert q["cnr"] == pytest.approx(cnr)
    n = wm.size
    assert q["snr_wm"] == pytest.approx(wm.mean() / (wm.std() * math.sqrt(n / (n - 1))))
    assert q["snr_dietrich_wm"] == pytest.approx(DIETRICH_FACTOR * wm.mean() / sigma_air)
    assert 0 < q["efc"] < 1


def test_missing_inputs_give_nan_not_errors(anatomy, caplog):
    img, _ = _acquire(anatomy, 0.03)
    with caplog.at_level(logging.DEBUG, logger="dawm.preprocess.quality"):
        q = image_quality(img, brain_mask=anatomy["mask"], tissues=None, spacing_mm=(2, 2, 2))
    assert math.isnan(q["cnr"]) and math.isnan(q["cjv"]) and math.isnan(q["snr_wm"])
    assert np.isfinite(q["efc"]) and np.isfinite(q["fber"])
    assert "no tissue segmentation" in caplog.text
    # Skull-stripped image: no air left -> air-based metrics NaN, the rest still computed.
    stripped = np.where(anatomy["mask"], img, 0.0)
    q = image_quality(stripped, brain_mask=anatomy["mask"], tissues=anatomy["dseg"], spacing_mm=(2, 2, 2))
    assert math.isnan(q["snr_dietrich"]) and math.isnan(q["cnr"]) and math.isnan(q["fber"])
    assert np.isfinite(q["cjv"]) and np.isfinite(q["snr_wm"])


def test_bad_input_raises(anatomy):
    img = anatomy["t1"]
    with pytest.raises(ValueError):
        image_quality(img[0], brain_mask=anatomy["mask"][0], spacing_mm=(2, 2, 2))
    with pytest.raises(ValueError):
        image_quality(img, brain_mask=anatomy["mask"][:-1], spacing_mm=(2, 2, 2))
    with pytest.raises(ValueError):
        image_quality(img, brain_mask=np.zeros(img.shape, bool), spacing_mm=(2, 2, 2))
    with pytest.raises(ValueError):
        image_quality(img, brain_mask=anatomy["mask"], spacing_mm=(2, 2))
