"""A calibrated DAWM probability per voxel: one minus the local false discovery rate of the z evidence.

Pure array functions; volumes are (X, Y, Z) on the session grid, scores are in z units, counts in voxels.

**Score** (:func:`dawm_score`): the abnormality components ``a_T1 = z_T1`` and ``a_MTR = -z_MTR``
(:func:`dawm.label.zscores.abnormality`, both high in the DAWM direction) combined as the binary rule
combines them: ``min(a_T1, a_MTR)`` for the default ``both`` (a voxel is as abnormal as its *less*
abnormal map: a single-map outlier is no DAWM), ``max`` for ``either``, one component for ``t1`` /
``mtr``, ``(a_T1 + a_MTR) / sqrt(2)`` for ``chi2``; with one map, that map's component. The z maps
are made from T1/MTR smoothed inside pure WM (``smoothing_fwhm_mm``): each score already pools its
neighbourhood.

**Two-group model** (Efron, JASA 2004; Efron, *Large-scale inference*, 2010). Inside the voxels that
may be DAWM (the eligible WM of :func:`dawm.label.rules.eligible_wm`, minus lesions and lesion-like
voxels) the scores have the density ``f = pi0 f0 + (1 - pi0) f1``, ``f0`` the null (normal-appearing
WM), ``f1`` DAWM. A voxel of score ``s`` is DAWM with probability ``P(s) = 1 - pi0 f0(s) / f(s)``, and
the sum of ``P`` over the voxels estimates their number of DAWM voxels ``n (1 - pi0)``; times the
voxel volume it is the expected DAWM volume. :func:`dawm_probability` estimates it in five steps:

1. **null centre and SD**, calibrated on the session's *reference* NAWM, the voxels the z maps were
   standardised and recentred on (pure WM away from lesions; the z maps are against the scanner's
   controls in ``controls`` mode, against these very voxels in ``self`` mode) (:func:`empirical_null`).
   DAWM only raises the score, so they are read off the reference's low side: ``centre`` is its
   ``pi0 / 2`` quantile, ``sd`` the distance to its ``pi0 / 4`` quantile over 0.6745, with ``pi0``
   the reference's own null share (as in step 3), iterated to the fixed point: the DAWM inside the
   reference (self mode; MS NAWM in controls mode) neither shifts nor widens the null. Scores are
   then standardised, ``u = (s - centre) / sd``;
2. **null shape**: the distribution of ``u`` in the eligible WM of *healthy controls* of the same
   normative group, their z maps made exactly as when they are labelled (leave-one-out controls
   reference, or self), pooled (:func:`standardised_histogram`; the pipeline leaves the session's own
   subject out). This is what calibrates the tail: NAWM is not Gaussian (residual anatomy, partial
   volume, bias fields make one-sided tails that the binary rule also meets as control false
   positives), and a healthy brain's tail, measured, is no DAWM. When the group has no other control,
   the pipeline pools the other groups' controls instead (``dawm.label.pipeline.null_shape_for``).
   Without any other control (a dataset without controls, or its only control), the standard
   normal, with a **tail guard**: the session's own low tail mirrored about the centre estimates
   ``pi0 f0`` on the high side without assuming normality, and the null count of a bin is the larger
   of the two;
3. **pi0** under Efron's *zero assumption*: no DAWM at ``u <= zero_sd`` (the central zone, default
   2): ``pi0`` is the session's share of voxels in the zone over the null's, capped at 1 (a
   Storey-type estimate whose null-only region is the central zone). A zone this wide makes ``pi0``
   precise: a 1 % error of ``pi0``, the centre or the SD moves ``n (1 - pi0)`` by a few tenths of a
   percent of the WM, a control's whole budget;
4. **mixture** ``f``: a binned Gaussian kernel density of the eligible voxels' ``u`` (bins of 0.05,
   bandwidth ``bandwidth_sd``); the null counts get the same kernel, so that the ratio compares like
   with like (the kernel estimate of a pure null is wider than the null itself);
5. ``P = clip(1 - null / f, 0, 1)`` above the central zone, made non-decreasing in ``u`` by a weighted
   isotonic regression (weights ``f``: within each pooled run of bins the sum of ``f P``, hence the
   expected count, is kept); ``P = 0`` in the central zone and below (the non-DAWM direction),
   outside the eligible WM, in lesions and in lesion-like voxels.

When the null is right, the sum is unbiased for the DAWM voxels that score above the central zone;
DAWM fainter than that (the margins of a region, very mild DAWM) is the price of the zero assumption
(``tests/label/test_probability.py``: regions 3 SD above the null on the combined score keep 63-88 %
of their count, regions 3 SD above on both maps 81-102 %). Two small effects of opposite sign remain:
the clip at 0 keeps the positive part of the noise of the high tail (about 0.05 % of the eligible WM,
at most 0.3 %, on Gaussian null phantoms of 24 000 voxels), the tail guard removes about as much
from real DAWM.

**Cluster support** (:func:`counted_voxels`, ``min_cluster_voxels``): DAWM is a region of several
mm (Seewann 2009), noise above the central zone is mostly small specks. With ``min_cluster_voxels``
> 1, a voxel above the central zone enters the densities (and may get P > 0) only when it lies in a
26-connected cluster of at least that many above-zone candidates; the voxels of the central zone and
below all count. The null's tail is made the same way: the controls' standardised histograms count
only *their* above-zone voxels in such clusters, so the lfdr compares a session's clustered tail with
the controls' clustered tail, and the sum stays an estimate of the DAWM voxels in clusters (what
noise forms into clusters on that grid is in the null, measured, not assumed). With the Gaussian
null (no other control) the support is off: a Gaussian says nothing of clusters. DAWM regions smaller
than the cluster size are the price, as for the binary rule's cluster filter. The size and what it
changed on the 2 mm cohorts: ``probability_min_cluster_mm3`` in :mod:`dawm.label.config`. Without
it (0 or 1), every eligible voxel counts, isolated ones included. The probability map stays independent of the binary
rule's thresholds and growth: the two can disagree on single voxels, and the binary DAWM volume is
not the rounded expected volume.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage, stats
from scipy.optimize import isotonic_regression

from dawm.image.components import FULL, filter_components

#: Default half-width (null SD) of the central zone of the zero assumption.
ZERO_SD = 2.0
#: Default kernel bandwidth of the density estimates (null SD).
BANDWIDTH_SD = 0.2
#: Fewest reference voxels a null is fitted on.
MIN_VOXELS = 50
#: Histogram bin width of the density estimates (null SD), and the fixed grid of standardised scores
#: (symmetric about 0, so that bin k mirrors bin K - 1 - k); scores beyond it are binned at its ends.
BIN_SD = 0.05
GRID_EDGES = BIN_SD * np.arange(-800, 801)


@dataclass(frozen=True)
class NullFit:
    """The empirical null ``N(centre, sd)`` (z units) of the reference scores, their null share
    ``pi0`` and their number ``n`` (:func:`empirical_null`)."""

    centre: float
    sd: float
    pi0: float
    n: int


@dataclass(frozen=True)
class ProbabilityFit:
    """What :func:`dawm_probability` estimated: the reference's ``null``, the eligible voxels' ``pi0``,
    their number ``n_eligible`` and expected DAWM count ``expected_voxels`` (the sum of the
    probabilities), the null's tail (``null_shape``: ``gaussian`` with the mirrored-tail guard,
    ``controls`` of the session's normative group or ``controls of other groups``, and their number
    ``n_controls``) and the settings ``zero_sd``, ``bandwidth_sd`` and
    ``min_cluster_voxels`` (the cluster support; 0: none)."""

    null: NullFit
    pi0: float
    n_eligible: int
    expected_voxels: float
    zero_sd: float
    bandwidth_sd: float
    null_shape: str = "gaussian"
    n_controls: int = 0
    min_cluster_voxels: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def dawm_score(z_t1: np.ndarray | None, z_mtr: np.ndarray | None, rule: str = "both") -> np.ndarray:
    """The DAWM evidence of a voxel (float32, shape of the maps, z, high = DAWM) from the abnormality
    components ``a_T1 = z_T1`` and ``a_MTR = -z_MTR`` (:func:`dawm.label.zscores.abnormality`), combined
    the way the binary ``rule`` combines them: ``both``: ``min(a_T1, a_MTR)`` (abnormal only as far as
    *both* are), ``either``: ``max``, ``t1`` / ``mtr``: that component, ``chi2``: ``(a_T1 + a_MTR) / sqrt(2)``.
    With one map missing, the other's component alone."""
    if z_t1 is None and z_mtr is None:
        raise ValueError("no z map given")
    if z_mtr is None or (rule == "t1" and z_t1 is not None):
        return np.asarray(z_t1, np.float32).copy()
    if z_t1 is None or rule == "mtr":
        return -np.asarray(z_mtr, np.float32)
    a1, a2 = np.asarray(z_t1, np.float32), -np.asarray(z_mtr, np.float32)
    if rule == "both":
        return np.minimum(a1, a2)
    if rule == "either":
        return np.maximum(a1, a2)
    if rule == "chi2":
        return ((a1 + a2) / np.float32(np.sqrt(2.0))).astype(np.float32)
    raise ValueError(f"unknown rule {rule!r}")


def empirical_null(scores: np.ndarray, *, zero_sd: float = ZERO_SD, iterations: int = 50) -> NullFit:
    """The empirical null ``N(centre, sd)`` of a 1D sample of scores (the reference NAWM's), read off
    its low side, which DAWM does not reach: with ``pi0`` the sample's null share, the null's median
    is the sample's ``pi0 / 2`` quantile and its lower quartile the ``pi0 / 4`` one, so
    ``centre = Q(pi0 / 2)`` and ``sd = (centre - Q(pi0 / 4)) / 0.6745``; ``pi0`` is the share of the
    sample at or below ``centre + zero_sd sd`` over the null's, ``Phi(zero_sd)``, capped at 1 (the zero
    assumption). The three are iterated to their fixed point from ``pi0 = 1`` (a strong contraction:
    a ``pi0`` error shrinks about a hundredfold per step for ``zero_sd`` 2). Without DAWM this is the
    median and the lower-quartile spread. ``ValueError`` for fewer than :data:`MIN_VOXELS` finite
    scores or a sample without spread."""
    s = np.asarray(scores, np.float64).ravel()
    s = np.sort(s[np.isfinite(s)])
    if s.size < MIN_VOXELS:
        raise ValueError(f"only {s.size} reference scores: cannot fit a null")
    quartile = float(stats.norm.ppf(0.75))
    zone = float(stats.norm.cdf(zero_sd))
    pi0 = 1.0
    for _ in range(iterations):
        centre = float(np.quantile(s, pi0 / 2))
        sd = (centre - float(np.quantile(s, pi0 / 4))) / quartile
        if not sd > 0:
            raise ValueError("reference scores without spread: cannot fit a null")
        new = min(1.0, float(np.searchsorted(s, centre + zero_sd * sd, side="right")) / s.size / zone)
        done = abs(new - pi0) < 1e-6
        pi0 = new
        if done:
            break
    centre = float(np.quantile(s, pi0 / 2))
    sd = (centre - float(np.quantile(s, pi0 / 4))) / quartile
    return NullFit(centre, float(sd), float(pi0), int(s.size))


def standardised_histogram(scores: np.ndarray, null: NullFit) -> np.ndarray:
    """Counts (int64, :data:`GRID_EDGES` bins) of the standardised scores ``(s - centre) / sd`` of a
    1D sample: what a control contributes to the controls' null shape."""
    u = (np.asarray(scores, np.float64).ravel() - null.centre) / null.sd
    u = u[np.isfinite(u)]
    return np.histogram(np.clip(u, GRID_EDGES[0], GRID_EDGES[-1] - 1e-6 * BIN_SD), GRID_EDGES)[0].astype(np.int64)


def counted_voxels(
    score: np.ndarray, candidates: np.ndarray, null: NullFit, *, zero_sd: float = ZERO_SD, min_cluster_voxels: int = 0
) -> np.ndarray:
    """The ``candidates`` (bool, shape of ``score``) that enter the densities under the cluster support
    (module docstring): all of them at or below ``centre + zero_sd sd``, and above it those in a
    26-connected cluster of at least ``min_cluster_voxels`` above-zone candidates. ``min_cluster_voxels``
    <= 1: every candidate."""
    candidates = np.asarray(candidates, bool)
    if min_cluster_voxels <= 1:
        return candidates.copy()
    above = candidates & (np.asarray(score, np.float64) > null.centre + zero_sd * null.sd)
    return candidates & (~above | filter_components(above, connectivity=FULL, min_voxels=min_cluster_voxels))


def _kernel(counts: np.ndarray, sigma_bins: float) -> np.ndarray:
    counts = np.asarray(counts, np.float64)
    return ndimage.gaussian_filter1d(counts, sigma_bins, mode="constant", truncate=5.0) if sigma_bins > 0 else counts


def lfdr_curve(
    counts: np.ndarray, *, null_shape: np.ndarray | None = None, bandwidth_sd: float = BANDWIDTH_SD, zero_sd: float = ZERO_SD
) -> tuple[np.ndarray, float]:
    """The DAWM probability of each :data:`GRID_EDGES` bin (K, non-decreasing, 0 up to ``zero_sd``)
    and ``pi0``, from the eligible voxels' standardised-score ``counts`` (K) (steps 2-5 of the module
    docstring). ``null_shape``: the controls' pooled standardised-score counts (K), the null's shape;
    None: the standard normal with the mirrored-tail guard."""
    counts = np.asarray(counts, np.float64)
    n = counts.sum()
    prob = np.zeros(counts.size)
    if n == 0:
        return prob, 1.0
    if null_shape is None:
        p0 = np.diff(stats.norm.cdf(GRID_EDGES))
    else:
        p0 = np.asarray(null_shape, np.float64) / float(np.sum(null_shape))
    zone = GRID_EDGES[1:] <= zero_sd + 1e-9
    pi0 = min(1.0, float(counts[zone].sum()) / (n * float(p0[zone].sum())))
    sigma_bins = bandwidth_sd / BIN_SD
    f = _kernel(counts, sigma_bins)
    null_counts = _kernel(pi0 * n * p0, sigma_bins)
    if null_shape is None:
        null_counts = np.maximum(null_counts, f[::-1])  # tail guard: the mirrored low tail
    above = GRID_EDGES[:-1] >= zero_sd - 1e-9
    usable = above & (f > 1e-3)  # every bin holding a voxel has f > 0.1
    if usable.any():
        fit = isotonic_regression(1.0 - null_counts[usable] / f[usable], weights=f[usable], increasing=True).x
        prob[usable] = np.clip(fit, 0.0, 1.0)
        prob[above] = np.maximum.accumulate(prob[above])  # empty bins take their left neighbour's value
    return prob, pi0


def dawm_probability(
    score: np.ndarray,
    eligible: np.ndarray,
    reference: np.ndarray,
    *,
    exclude: np.ndarray | None = None,
    null_shape: np.ndarray | None = None,
    n_controls: int = 0,
    zero_sd: float = ZERO_SD,
    bandwidth_sd: float = BANDWIDTH_SD,
    min_cluster_voxels: int = 0,
    null_shape_name: str = "controls",
) -> tuple[np.ndarray, ProbabilityFit]:
    """The DAWM probability map (float32 0-1, shape of ``score``) and its fit (module docstring).

    ``score``: :func:`dawm_score` (z); ``eligible``: bool, the voxels that may be DAWM;
    ``reference``: bool, the reference NAWM the null's centre and SD are calibrated on; ``exclude``:
    bool, voxels that are never DAWM (lesions, lesion-like voxels); ``null_shape``: the pooled
    :func:`standardised_histogram` of ``n_controls`` healthy controls (their eligible voxels), or None
    for a Gaussian null (made with the same ``min_cluster_voxels``); ``zero_sd``: end of the central
    zone (null SD); ``bandwidth_sd``: kernel bandwidth (null SD); ``min_cluster_voxels``: the cluster
    support (:func:`counted_voxels`; 0: every voxel counts; off with the Gaussian null);
    ``null_shape_name``: where ``null_shape`` comes from, recorded in the fit. The map is 0 outside
    ``eligible & ~exclude`` and where the score is not finite; its sum is :attr:`ProbabilityFit.expected_voxels`. A reference of fewer than
    :data:`MIN_VOXELS` voxels is replaced by the eligible voxels themselves (the low-side null
    tolerates their DAWM); with fewer eligible voxels too the map is 0 (the null then reads N(0, 1),
    unfitted, ``n`` the voxels found).
    """
    score = np.asarray(score, np.float32)
    finite = np.isfinite(score)
    cand = np.asarray(eligible, bool) & finite
    if exclude is not None:
        cand &= ~np.asarray(exclude, bool)
    sample = score[np.asarray(reference, bool) & finite]
    if sample.size < MIN_VOXELS:
        sample = score[cand]
    out = np.zeros(score.shape, np.float32)
    shape_name = "gaussian" if null_shape is None else null_shape_name
    if null_shape is None:
        min_cluster_voxels = 0  # the cluster support needs a measured null (a Gaussian knows no clusters)
    try:
        null = empirical_null(sample, zero_sd=zero_sd)
    except ValueError:
        return out, ProbabilityFit(
            NullFit(0.0, 1.0, 1.0, int(sample.size)),
            1.0,
            int(cand.sum()),
            0.0,
            zero_sd,
            bandwidth_sd,
            shape_name,
            n_controls,
            min_cluster_voxels,
        )
    counted = counted_voxels(score, cand, null, zero_sd=zero_sd, min_cluster_voxels=min_cluster_voxels)
    values = score[counted].astype(np.float64)
    prob, pi0 = lfdr_curve(standardised_histogram(values, null), null_shape=null_shape, bandwidth_sd=bandwidth_sd, zero_sd=zero_sd)
    u = (values - null.centre) / null.sd
    p = prob[np.clip(np.searchsorted(GRID_EDGES, u, side="right") - 1, 0, prob.size - 1)]
    p[u <= zero_sd] = 0.0
    out[counted] = p
    return out, ProbabilityFit(
        null,
        float(pi0),
        int(cand.sum()),
        float(out[counted].sum(dtype=np.float64)),
        zero_sd,
        bandwidth_sd,
        shape_name,
        n_controls,
        min_cluster_voxels,
    )
