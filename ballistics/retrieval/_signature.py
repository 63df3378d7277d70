"""Fixed-length, rotation-invariant signatures of extracted surfaces.

A signature is one L2-normalised ``float32`` vector per surface (breech face or firing
pin), built from two blocks:

1. **VLAD of SIFT descriptors** (Jegou et al. 2010).  The surface is standardised to
   grey levels, SIFT key points (Lowe 2004, OpenCV) are detected inside the eroded
   valid mask; their descriptors are projected on a fixed PCA basis and aggregated
   against a fixed codebook (residual sums per visual word, signed square-root and
   intra-normalisation, Arandjelovic & Zisserman 2013).  SIFT descriptors are
   oriented along their key point's dominant gradient, so the block is invariant
   to rotation and translation; it only sums what is there, so missing data and
   partial overlap reduce the block's weight rather than shifting it.
2. **Angular power spectrum of the polar-unwrapped surface**.  The surface is
   unwrapped around the region centre (``scan.region["centre_m"]``, else the
   centroid of the valid pixels); along each radius, ``|FFT|`` over the angle is
   invariant to a rotation about the centre; the log-magnitudes of the first
   harmonics are averaged (mask-weighted) in a few radial bands.

The PCA basis and the codebook are fixed parameters of the signature version
(:data:`SIGNATURE_VERSION`); they were trained once on the six bundled Fadul
breech faces (:func:`train_codebook`) and ship in :mod:`._codebook`, so a signature
never depends on what else is in a database.

On the 40 processed Fadul scans (each against the other 39) this combination puts
a same-firearm mate at rank 1 for 57.5 % of the queries and in the top 10 for 95 %
(polar spectrum alone: 52.5 % / 92.5 %; SIFT-VLAD alone: 57.5 % / 90 %); larger VLAD
variants do better at rank 1 but need 4-8 k values per scan.  See
``benchmarks/results_index.md`` for every option measured.

References
----------
Lowe, D. G. (2004). Distinctive image features from scale-invariant keypoints. IJCV 60.
Jegou, H., Douze, M., Schmid, C., Perez, P. (2010). Aggregating local descriptors into
a compact image representation. CVPR.
Arandjelovic, R., Zisserman, A. (2013). All about VLAD. CVPR.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import BallisticsError, EmptyScanError
from ..scan import Scan

logger = logging.getLogger(__name__)

SIGNATURE_VERSION = "vlad-sift-pca32-k16+polar-b4-h32/v1"

#: Parameters of the signature (recorded with every stored signature).
PARAMS: dict[str, Any] = {
    "version": SIGNATURE_VERSION,
    "spacing_m": 6.25e-6,        # surfaces are resampled to this pixel size first
    "grey_per_std": 40.0,        # grey levels per standard deviation of height
    "sift_features": 800,        # at most this many SIFT key points
    "erode_px": 9,               # key points closer than this to missing data are dropped
    "pca_components": 32,
    "codebook_size": 16,
    "n_radii": 64,
    "n_angles": 256,
    "n_bands": 4,
    "n_harmonics": 32,
    "polar_weight": 0.5,         # weight of the polar block against the VLAD block
    "min_keypoints": 8,
}

_CODEBOOK: dict[str, np.ndarray] | None = None


def signature_dim(params: dict[str, Any] | None = None) -> int:
    """Length of a signature vector for the given (default) parameters."""
    p = PARAMS if params is None else params
    return int(p["pca_components"] * p["codebook_size"] + p["n_bands"] * p["n_harmonics"])


def _codebook() -> dict[str, np.ndarray]:
    global _CODEBOOK
    if _CODEBOOK is None:
        from ._codebook import load
        _CODEBOOK = load()
    return _CODEBOOK


# ----------------------------------------------------------------------------- helpers
def _standardise(scan: Scan, spacing_m: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Resample to ``spacing_m`` and standardise heights; returns (z, mask, scale).

    NaN are filled with 0 after standardisation; ``mask`` marks measured pixels.
    ``scale`` is the resampling factor applied (new pixels per old pixel).
    """
    import cv2

    z = np.asarray(scan.data, dtype=np.float64)
    m = np.isfinite(z)
    dy, dx = scan.spacing
    fy, fx = dy / spacing_m, dx / spacing_m
    if abs(fy - 1) > 0.05 or abs(fx - 1) > 0.05:
        shape = (max(int(round(z.shape[1] * fx)), 8), max(int(round(z.shape[0] * fy)), 8))
        zf = np.where(m, z, 0.0).astype(np.float32)
        interp = cv2.INTER_AREA if fx < 1 else cv2.INTER_LINEAR
        zs = cv2.resize(zf, shape, interpolation=interp)
        ws = cv2.resize(m.astype(np.float32), shape, interpolation=interp)
        m = ws > 0.5
        z = np.where(m, zs / np.maximum(ws, 1e-6), np.nan).astype(np.float64)
    vals = z[m]
    if vals.size < 64:
        raise EmptyScanError(f"The surface {scan.name!r} holds only {vals.size} valid pixels at "
                             f"{spacing_m * 1e6:.3g} um; a signature needs a measured surface.")
    # remove the best-fit plane (form), then standardise
    yy, xx = np.nonzero(m)
    A = np.column_stack([np.ones(yy.size), yy, xx]).astype(np.float64)
    coef, *_ = np.linalg.lstsq(A, vals, rcond=None)
    resid = vals - A @ coef
    sd = float(resid.std())
    out = np.zeros(z.shape, dtype=np.float64)
    if sd > 0:
        out[m] = resid / sd
    return out, m, fx


def _centre_px(scan: Scan, mask: np.ndarray, scale: float) -> tuple[float, float]:
    """Centre (x, y) in pixels of the resampled surface."""
    reg = scan.region or {}
    c = reg.get("centre_m")
    if c is not None:
        try:
            cy, cx = float(c[0]), float(c[1])
            # region centre is (y, x) in metres from the scan's origin
            px = (cx / scan.spacing[1] * scale, cy / scan.spacing[0] * scale)
            if 0 <= px[0] < mask.shape[1] and 0 <= px[1] < mask.shape[0]:
                return px
        except (TypeError, ValueError, IndexError):
            pass
    yy, xx = np.nonzero(mask)
    return float(xx.mean()), float(yy.mean())


def sift_descriptors(z: np.ndarray, mask: np.ndarray, params: dict[str, Any] | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """SIFT key points (x, y in pixels) and descriptors of a standardised surface.

    Parameters
    ----------
    z : numpy.ndarray
        Standardised heights (zero mean, unit standard deviation, 0 where missing).
    mask : numpy.ndarray
        True where measured.
    params : dict, optional
        Signature parameters (defaults: :data:`PARAMS`).

    Returns
    -------
    points : numpy.ndarray, shape (n, 2)
        Key point positions in pixels (x, y).
    descriptors : numpy.ndarray, shape (n, 128), float32

    References
    ----------
    Lowe (2004), IJCV 60, 91-110.
    """
    import cv2

    p = PARAMS if params is None else params
    img = np.clip(z * p["grey_per_std"] + 128.0, 0, 255).astype(np.uint8)
    k = int(p["erode_px"])
    mk = cv2.erode(mask.astype(np.uint8) * 255, np.ones((k, k), np.uint8))
    sift = cv2.SIFT.create(nfeatures=int(p["sift_features"]))
    kp, d = sift.detectAndCompute(img, mk)
    if d is None or len(kp) == 0:
        return np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float32)
    pts = np.array([k_.pt for k_ in kp], dtype=np.float32)
    return pts, d.astype(np.float32)


def vlad(descriptors: np.ndarray, mean: np.ndarray, basis: np.ndarray, centroids: np.ndarray
         ) -> np.ndarray:
    """VLAD aggregation of local descriptors (PCA-projected), flattened.

    Parameters
    ----------
    descriptors : numpy.ndarray, shape (n, 128)
    mean, basis : numpy.ndarray
        PCA mean (128,) and basis (128, d).
    centroids : numpy.ndarray, shape (K, d)
        Codebook.

    Returns
    -------
    numpy.ndarray, shape (K * d,)
        Signed-square-rooted, intra-normalised residual sums (zeros if no descriptor).

    References
    ----------
    Jegou et al. (2010), CVPR; Arandjelovic & Zisserman (2013), CVPR.
    """
    K, d = centroids.shape
    V = np.zeros((K, d), dtype=np.float64)
    if len(descriptors):
        x = (descriptors.astype(np.float64) - mean) @ basis
        d2 = ((x[:, None, :] - centroids[None, :, :]) ** 2).sum(-1)
        a = np.argmin(d2, axis=1)
        np.add.at(V, a, x - centroids[a])
        V = np.sign(V) * np.sqrt(np.abs(V))
        n = np.linalg.norm(V, axis=1, keepdims=True)
        V = np.divide(V, n, out=np.zeros_like(V), where=n > 0)
    return V.ravel()


def polar_spectrum(z: np.ndarray, mask: np.ndarray, centre: tuple[float, float],
                   params: dict[str, Any] | None = None) -> np.ndarray:
    """Rotation-invariant angular power spectrum of a surface around ``centre``.

    The surface is resampled on a polar grid (``n_radii`` x ``n_angles``); along each
    radius the magnitude of the FFT over the angle is taken (a rotation about the
    centre is a circular shift in angle, which leaves the magnitude unchanged), and the
    log-magnitudes of harmonics 1..``n_harmonics`` are averaged over ``n_bands``
    radial bands, weighted by the measured fraction of each radius.

    Returns
    -------
    numpy.ndarray, shape (n_bands * n_harmonics,)
        Zero-mean log spectrum.
    """
    import cv2

    p = PARAMS if params is None else params
    nr, na, nb, H = int(p["n_radii"]), int(p["n_angles"]), int(p["n_bands"]), int(p["n_harmonics"])
    cx, cy = centre
    rmax = 0.5 * min(z.shape)
    r = (np.arange(nr) + 0.5) * rmax / nr
    a = np.linspace(0, 2 * np.pi, na, endpoint=False)
    X = (cx + np.cos(a)[:, None] * r[None, :]).astype(np.float32)
    Y = (cy + np.sin(a)[:, None] * r[None, :]).astype(np.float32)
    P = cv2.remap(z.astype(np.float32), X, Y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    M = cv2.remap(mask.astype(np.float32), X, Y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                  borderValue=0)
    F = np.abs(np.fft.rfft(P.astype(np.float64), axis=0))[1:H + 1]  # (H, nr)
    w_r = M.mean(axis=0)
    out = []
    for band in np.array_split(np.arange(nr), nb):
        w = w_r[band]
        out.append((F[:, band] * w).sum(1) / (w.sum() + 1e-9))
    v = np.log1p(np.concatenate(out))
    return v - v.mean()


# ----------------------------------------------------------------------------- public
def signature(scan: Scan, params: dict[str, Any] | None = None,
              codebook: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """Fixed-length rotation-invariant signature of an extracted surface.

    Parameters
    ----------
    scan : Scan
        An extracted breech face or firing pin (heights in metres, NaN where not
        measured), e.g. the output of :func:`ballistics.extract_breech_face` or a
        processed Fadul scan.  Any pixel size: the surface is resampled to
        ``params["spacing_m"]`` (6.25 um) first.
    params : dict, optional
        Signature parameters; defaults to :data:`PARAMS`.  Signatures computed with
        different parameters are not comparable.
    codebook : dict, optional
        ``mean``, ``basis``, ``centroids`` from :func:`train_codebook`, to evaluate a
        codebook trained without the queried firearms (default: the shipped one).

    Returns
    -------
    numpy.ndarray, shape (signature_dim(),), float32
        Unit-length vector; the inner product of two signatures is their cosine
        similarity (higher = more alike).

    Raises
    ------
    EmptyScanError
        The surface has (almost) no measured pixels or no texture at all.

    References
    ----------
    Lowe (2004); Jegou et al. (2010); Arandjelovic & Zisserman (2013).
    """
    if not isinstance(scan, Scan):
        raise BallisticsError(f"signature() needs a ballistics.Scan, got {type(scan).__name__}.")
    p = PARAMS if params is None else {**PARAMS, **params}
    scan.require_valid(0.0, "surface")
    z, m, scale = _standardise(scan, float(p["spacing_m"]))
    if not np.any(z):
        raise EmptyScanError(f"The surface {scan.name!r} is flat (no texture); no signature can be made.")
    cb = _codebook() if codebook is None else codebook
    if cb["basis"].shape[1] != p["pca_components"] or cb["centroids"].shape[0] != p["codebook_size"]:
        raise BallisticsError("signature parameters do not match the shipped codebook "
                              f"({cb['basis'].shape[1]} components x {cb['centroids'].shape[0]} words).")
    _, desc = sift_descriptors(z, m, p)
    if len(desc) < int(p["min_keypoints"]):
        logger.warning("%s: only %d SIFT key points; the signature relies on the polar spectrum",
                       scan.name, len(desc))
        desc = desc[:0]
    v1 = vlad(desc, cb["mean"], cb["basis"], cb["centroids"])
    n1 = np.linalg.norm(v1)
    if n1 > 0:
        v1 = v1 / n1
    v2 = polar_spectrum(z, m, _centre_px(scan, m, scale), p)
    n2 = np.linalg.norm(v2)
    if n2 > 0:
        v2 = v2 / n2
    v = np.concatenate([v1, float(p["polar_weight"]) * v2])
    n = np.linalg.norm(v)
    if not np.isfinite(n) or n == 0:
        raise EmptyScanError(f"The surface {scan.name!r} gave an empty signature (no texture).")
    return (v / n).astype(np.float32)


def train_codebook(scans: Sequence[Scan], params: dict[str, Any] | None = None, seed: int = 1
                   ) -> dict[str, np.ndarray]:
    """Train the PCA basis and VLAD codebook on the SIFT descriptors of some surfaces.

    Used once to make :mod:`._codebook` (from the bundled Fadul breech faces); kept
    public so a lab can retrain on its own data (a new signature version).

    Returns
    -------
    dict
        ``mean`` (128,), ``basis`` (128, d), ``centroids`` (K, d), float64.
    """
    import faiss

    p = PARAMS if params is None else {**PARAMS, **params}
    descs = []
    for s in scans:
        z, m, _ = _standardise(s, float(p["spacing_m"]))
        descs.append(sift_descriptors(z, m, p)[1])
    X = np.vstack(descs).astype(np.float64)
    if len(X) < 4 * int(p["codebook_size"]):
        raise EmptyScanError(f"Only {len(X)} SIFT descriptors to train a codebook; give more surfaces.")
    mean = X.mean(0)
    _, _, vt = np.linalg.svd(X - mean, full_matrices=False)
    basis = vt[: int(p["pca_components"])].T
    Y = ((X - mean) @ basis).astype(np.float32)
    km = faiss.Kmeans(Y.shape[1], int(p["codebook_size"]), niter=25, seed=seed)
    km.train(Y)
    assert km.centroids is not None  # set by train()
    return {"mean": mean, "basis": basis, "centroids": km.centroids.astype(np.float64)}
