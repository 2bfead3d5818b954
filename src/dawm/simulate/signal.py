"""Signal equations: MP2RAGE / MPRAGE (magnetisation-prepared gradient echo), FLAIR, MT-weighted GRE.

The MP(2)RAGE signal is computed by following the longitudinal magnetisation through one
repetition (inversion, free recovery, trains of ``n`` low-angle excitations, recovery) as an affine
map of its starting value, and solving for the steady state (Marques et al., NeuroImage 2010,
appendix). It is evaluated on a 1D grid of T1 values for a few transmit-field (B1+) scales and
interpolated per voxel, which is also how a scanner builds the lookup table that turns UNI into a
T1 map (:func:`t1_from_uni`, assuming nominal B1 as scanners do).

FLAIR uses the inversion-recovery spin-echo equation with the TI that nulls CSF; MT images use the
spoiled-GRE steady state with MT saturation ``1 - MTR/100``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

T1_GRID_MS = np.linspace(100.0, 5000.0, 981)
B1_GRID = np.linspace(0.7, 1.3, 13)


@dataclass(frozen=True)
class MPRAGEParams:
    """One magnetisation-prepared acquisition: times in ms, flip angles in degrees.

    ``ti_ms`` and ``flip_deg`` have one entry per GRE block (1 for MPRAGE, 2 for MP2RAGE); TIs are
    measured to the centre of each block (centre-out in slice-partition order, as in Marques 2010).
    """

    tr_ms: float
    ti_ms: tuple[float, ...]
    flip_deg: tuple[float, ...]
    n_excitations: int
    echo_spacing_ms: float
    inversion_efficiency: float = 0.96

    def validate(self) -> None:
        half = self.n_excitations / 2 * self.echo_spacing_ms
        t = 0.0
        for ti in self.ti_ms:
            if ti - half < t:
                raise ValueError(f"TI {ti} ms too short for {self.n_excitations} excitations of {self.echo_spacing_ms} ms")
            t = ti + half
        if t > self.tr_ms:
            raise ValueError(f"TR {self.tr_ms} ms too short for the readouts")


def mprage_block_signals(t1_ms: np.ndarray, p: MPRAGEParams, b1: float = 1.0) -> list[np.ndarray]:
    """Steady-state signal (per unit PD, signed) at the centre of each GRE block for T1 values."""
    p.validate()
    t1 = np.asarray(t1_ms, dtype=float)
    # Mz = a * m0 + b, m0 = Mz just before the inversion.
    a = np.full_like(t1, -p.inversion_efficiency)
    b = np.zeros_like(t1)
    t = 0.0

    def relax(a, b, dt):
        e = np.exp(-dt / t1)
        return a * e, b * e + (1 - e)

    centres = []
    n = p.n_excitations
    for ti, flip in zip(p.ti_ms, p.flip_deg):
        alpha = np.deg2rad(flip * b1)
        start = ti - n / 2 * p.echo_spacing_ms
        a, b = relax(a, b, start - t)
        t = start
        for k in range(n):
            if k == n // 2:
                centres.append((a.copy(), b.copy(), np.sin(alpha)))
            a, b = a * np.cos(alpha), b * np.cos(alpha)
            a, b = relax(a, b, p.echo_spacing_ms)
            t += p.echo_spacing_ms
    a, b = relax(a, b, p.tr_ms - t)
    m0 = b / (1 - a)
    return [(ac * m0 + bc) * s for ac, bc, s in centres]


class MPRAGESignal:
    """Per-voxel MP(2)RAGE signals by interpolation in a (B1, T1) lookup table."""

    def __init__(self, params: MPRAGEParams):
        self.params = params
        # (block, B1, T1) on uniform grids, so interpolation is plain index arithmetic.
        self.table = np.stack([np.stack(mprage_block_signals(T1_GRID_MS, params, b1)) for b1 in B1_GRID], axis=1).astype(np.float32)

    def __call__(self, t1_ms: np.ndarray, b1: np.ndarray | float = 1.0) -> list[np.ndarray]:
        """Signed signals per block for arrays of T1 (ms) and relative B1+ (broadcastable), bilinear."""
        t1_ms = np.asarray(t1_ms, dtype=np.float32)
        ft = (np.clip(t1_ms, T1_GRID_MS[0], T1_GRID_MS[-1]) - T1_GRID_MS[0]) / np.float32(T1_GRID_MS[1] - T1_GRID_MS[0])
        fb = (np.clip(np.broadcast_to(np.asarray(b1, np.float32), t1_ms.shape), B1_GRID[0], B1_GRID[-1]) - B1_GRID[0]) / np.float32(
            B1_GRID[1] - B1_GRID[0]
        )
        it = np.minimum(ft.astype(np.int32), len(T1_GRID_MS) - 2)
        ib = np.minimum(fb.astype(np.int32), len(B1_GRID) - 2)
        wt, wb = (ft - it).astype(np.float32), (fb - ib).astype(np.float32)
        out = []
        for tab in self.table:
            lo = tab[ib, it] * (1 - wt) + tab[ib, it + 1] * wt
            hi = tab[ib + 1, it] * (1 - wt) + tab[ib + 1, it + 1] * wt
            out.append((lo * (1 - wb) + hi * wb).astype(np.float32))
        return out


def uni(s1: np.ndarray, s2: np.ndarray) -> np.ndarray:
    """MP2RAGE uniform image: Re(S1 conj S2) / (|S1|^2 + |S2|^2), in [-0.5, 0.5]."""
    num = np.real(s1 * np.conj(s2))
    den = np.abs(s1) ** 2 + np.abs(s2) ** 2
    return np.where(den > 0, num / np.maximum(den, 1e-12), 0.0).astype(np.float32)


def uni_lookup(params: MPRAGEParams) -> tuple[np.ndarray, np.ndarray]:
    """The scanner's lookup table (UNI increasing, T1 ms) over the monotonic part of the curve."""
    s1, s2 = mprage_block_signals(T1_GRID_MS, params, 1.0)
    u = uni(s1, s2)
    # UNI decreases with T1 over tissue values; keep the monotonic branch starting at the maximum.
    start = int(np.argmax(u))
    u_branch, t1_branch = u[start:], T1_GRID_MS[start:]
    keep = np.concatenate([[True], np.diff(u_branch) < 0])
    stop = int(np.argmin(keep)) if not keep.all() else len(keep)
    u_branch, t1_branch = u_branch[:stop], t1_branch[:stop]
    return u_branch[::-1].copy(), t1_branch[::-1].copy()


def t1_from_uni(uni_img: np.ndarray, params: MPRAGEParams) -> np.ndarray:
    """T1 map (ms) from a UNI image with the scanner's lookup table (nominal B1)."""
    u_tab, t1_tab = uni_lookup(params)
    return np.interp(uni_img, u_tab, t1_tab, left=t1_tab[0], right=t1_tab[-1]).astype(np.float32)


def flair_null_ti(tr_ms: float, t1_csf_ms: float = 4000.0) -> float:
    """Inversion time (ms) that nulls CSF in an inversion-recovery sequence with repetition ``tr_ms``."""
    return float(t1_csf_ms * np.log(2.0 / (1.0 + np.exp(-tr_ms / t1_csf_ms))))


def flair_signal(
    t1_ms: np.ndarray, t2_ms: np.ndarray, pd: np.ndarray, *, tr_ms: float, ti_ms: float, te_ms: float, magnitude: bool = True
) -> np.ndarray:
    """Inversion-recovery spin-echo magnitude: PD |1 - 2 e^{-TI/T1} + e^{-TR/T1}| e^{-TE/T2}
    (signed without the ``| |`` when ``magnitude`` is False, so compartments add before it)."""
    t1 = np.maximum(t1_ms, 1.0)
    t2 = np.maximum(t2_ms, 1.0)
    mz = 1 - 2 * np.exp(-ti_ms / t1) + np.exp(-tr_ms / t1)
    return (pd * (np.abs(mz) if magnitude else mz) * np.exp(-te_ms / t2)).astype(np.float32)


def gre_signal(t1_ms: np.ndarray, pd: np.ndarray, *, tr_ms: float, flip_deg: float, b1: np.ndarray | float = 1.0) -> np.ndarray:
    """Spoiled gradient-echo steady state: PD sin(a) (1 - E1) / (1 - cos(a) E1), T2* decay ignored."""
    alpha = np.deg2rad(flip_deg) * b1
    e1 = np.exp(-tr_ms / np.maximum(t1_ms, 1.0))
    return (pd * np.sin(alpha) * (1 - e1) / (1 - np.cos(alpha) * e1)).astype(np.float32)


def mt_pair(
    t1_ms: np.ndarray, pd: np.ndarray, mtr_pu: np.ndarray, *, tr_ms: float, flip_deg: float, b1: np.ndarray | float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """(MT-off, MT-on) signals: the MT pulse saturates the free pool by ``MTR`` percent."""
    off = gre_signal(t1_ms, pd, tr_ms=tr_ms, flip_deg=flip_deg, b1=b1)
    on = off * (1 - np.clip(mtr_pu, 0, 100) / 100.0)
    return off, on.astype(np.float32)


def mtr_map(off: np.ndarray, on: np.ndarray, *, min_signal: float) -> np.ndarray:
    """MTR (pu) = 100 (M0 - Msat) / M0 where M0 exceeds ``min_signal`` (0 elsewhere, as scanners mask)."""
    ok = off > min_signal
    return np.where(ok, 100.0 * (off - on) / np.maximum(off, 1e-12), 0.0).astype(np.float32)
