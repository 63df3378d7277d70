"""Stage 2 of search: fast geometric verification with SIFT and a rigid RANSAC fit.

Every stored surface keeps its strongest SIFT key points (positions at 6.25 um per
pixel, orientation, descriptors as ``uint8``), computed once at ingest
(:func:`keypoints`, serialised by :meth:`Keypoints.to_bytes`).  A query is verified
against a candidate by matching descriptors (mutual nearest neighbours in L2 that pass
Lowe's ratio test) and fitting a rigid motion (rotation + translation, scale fixed at 1)
with RANSAC; the score is the number of inlier matches.  Two scans of one breech face
agree on many key points under one rigid motion; two different breech faces agree on a
handful by chance.  Files can be mirrored (a y-flip between conversion routes), so the
query's key points are also computed on its mirror image and the better fit counts.

The rigid RANSAC is vectorised NumPy: each hypothesis comes from two matches (their
segment fixes rotation and translation; pairs whose lengths differ by more than the
inlier tolerance are discarded, since a rigid motion keeps lengths), and all hypotheses
are scored at once.

References
----------
Lowe, D. G. (2004). Distinctive image features from scale-invariant keypoints. IJCV 60.
Fischler, M. A., Bolles, R. C. (1981). Random sample consensus. CACM 24(6).
Tong, Song et al. (2014) use the same idea (registration by corresponding features) for
cartridge-case images; Song (2013) for the cells' congruence.
"""

from __future__ import annotations

import functools
import logging
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._threads import with_compute_threads
from ..errors import BallisticsError, EmptyScanError
from ..kernels._rigid_hypotheses import best_rigid_hypothesis
from ..kernels._two_nearest import ratio_matches, two_nearest
from ..scan import Scan

logger = logging.getLogger(__name__)

VERIFY_VERSION = "sift-rigid-ransac/v1"

#: Parameters of the key points and of the verification.
PARAMS: dict[str, Any] = {
    "version": VERIFY_VERSION,
    "spacing_m": 6.25e-6,       # surfaces resampled to this pixel size
    "grey_per_std": 40.0,       # grey levels per standard deviation of height
    "n_features": 500,          # strongest key points kept per surface
    "erode_px": 9,              # key points closer than this to missing data are dropped
    "ratio": 0.85,              # Lowe's ratio test
    "inlier_px": 6.0,           # RANSAC inlier tolerance, pixels (37.5 um)
    "n_hypotheses": 400,        # RANSAC hypotheses per fit
    "seed": 0,
}

_MAGIC = b"BSK1"


class VerificationError(BallisticsError):
    """A key-point blob cannot be read (corrupt, truncated or another version)."""


@dataclass
class Keypoints:
    """SIFT key points of one surface, as stored at ingest.

    Attributes
    ----------
    points : numpy.ndarray, shape (n, 2), float32
        Positions (x, y) in pixels of ``spacing_m``.
    angles : numpy.ndarray, shape (n,), float32
        Dominant orientation of each key point, degrees (OpenCV convention).
    descriptors : numpy.ndarray, shape (n, 128), uint8
        SIFT descriptors.
    shape : tuple of int
        (rows, cols) of the resampled surface.
    spacing_m : float
        Pixel size of ``points``.
    """

    points: np.ndarray
    angles: np.ndarray
    descriptors: np.ndarray
    shape: tuple[int, int]
    spacing_m: float = 6.25e-6
    _desc_f32: np.ndarray | None = field(default=None, repr=False, compare=False)
    _sqnorm: np.ndarray | None = field(default=None, repr=False, compare=False)
    _neg2: np.ndarray | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return int(len(self.points))

    @property
    def desc_f32(self) -> np.ndarray:
        """Descriptors as float32 (cached)."""
        if self._desc_f32 is None:
            self._desc_f32 = np.ascontiguousarray(self.descriptors, dtype=np.float32)
        return self._desc_f32

    @property
    def desc_neg2(self) -> np.ndarray:
        """Descriptors times -2, float32 (cached; the query side of every distance product)."""
        if self._neg2 is None:
            self._neg2 = -2.0 * self.desc_f32
        return self._neg2

    @property
    def sqnorm(self) -> np.ndarray:
        """Squared L2 norm of every descriptor, float32 (cached)."""
        if self._sqnorm is None:
            d = self.desc_f32
            self._sqnorm = np.einsum("ij,ij->i", d, d)
        return self._sqnorm

    def mirrored(self) -> Keypoints:
        """The key points of the mirror image (x flipped) -- only for tests; the query
        side recomputes SIFT on the mirrored surface instead (descriptors change)."""
        pts = self.points.copy()
        pts[:, 0] = self.shape[1] - 1 - pts[:, 0]
        return Keypoints(pts, (180.0 - self.angles) % 360.0, self.descriptors.copy(), self.shape, self.spacing_m)

    def to_bytes(self) -> bytes:
        """Compact serialisation: header, float32 points, float16 angles, uint8 descriptors."""
        n = len(self)
        head = _MAGIC + struct.pack("<IIId", n, int(self.shape[0]), int(self.shape[1]), float(self.spacing_m))
        return (head + self.points.astype("<f4").tobytes() + self.angles.astype("<f2").tobytes()
                + self.descriptors.astype(np.uint8).tobytes())

    @classmethod
    def from_bytes(cls, blob: bytes) -> Keypoints:
        """Inverse of :meth:`to_bytes`; raises :class:`VerificationError` on bad input."""
        if not isinstance(blob, (bytes, bytearray, memoryview)):
            raise VerificationError(f"key-point blob must be bytes, got {type(blob).__name__}")
        blob = bytes(blob)
        hs = 4 + struct.calcsize("<IIId")
        if len(blob) < hs or blob[:4] != _MAGIC:
            raise VerificationError("not a key-point blob (bad header); recompute with ingest_blobs()")
        n, r, c, sp = struct.unpack("<IIId", blob[4:hs])
        need = hs + n * (8 + 2 + 128)
        if len(blob) != need:
            raise VerificationError(f"key-point blob truncated or padded: {len(blob)} bytes, expected {need}")
        o = hs
        pts = np.frombuffer(blob, "<f4", 2 * n, o).reshape(n, 2).astype(np.float32)
        o += 8 * n
        ang = np.frombuffer(blob, "<f2", n, o).astype(np.float32)
        o += 2 * n
        desc = np.frombuffer(blob, np.uint8, 128 * n, o).reshape(n, 128).copy()
        return cls(pts, ang, desc, (int(r), int(c)), float(sp))


@dataclass
class Verification:
    """Result of verifying one pair.

    Attributes
    ----------
    inliers : int
        Matches consistent with the best rigid motion (the stage-2 score).
    matches : int
        Matches that passed the ratio and mutual tests.
    rotation_deg : float or None
        Rotation taking the query's key points onto the candidate's (counter-clockwise in
        image coordinates, x right, y down), degrees; None without a fit.
    translation_px : tuple of float or None
        Translation (x, y) in pixels of ``spacing_m`` after the rotation.
    mirrored : bool
        The fit used the query's mirror image.
    """

    inliers: int
    matches: int
    rotation_deg: float | None = None
    translation_px: tuple[float, float] | None = None
    mirrored: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"inliers": self.inliers, "matches": self.matches, "rotation_deg": self.rotation_deg,
                "translation_px": None if self.translation_px is None else list(self.translation_px),
                "mirrored": self.mirrored}


# ----------------------------------------------------------------------------- ingest
def _grey(scan: Scan, spacing_m: float, grey_per_std: float) -> tuple[np.ndarray, np.ndarray]:
    from ._signature import _standardise

    z, m, _ = _standardise(scan, spacing_m)
    img = np.clip(z * grey_per_std + 128.0, 0, 255).astype(np.uint8)
    return img, m


def keypoints(scan: Scan, params: dict[str, Any] | None = None, *, mirror: bool = False) -> Keypoints:
    """SIFT key points of an extracted surface, for stage-2 verification.

    Parameters
    ----------
    scan : Scan
        Extracted breech face (heights in metres, NaN where not measured), any pixel
        size (resampled to ``params["spacing_m"]``, 6.25 um).
    params : dict, optional
        Overrides of :data:`PARAMS`.
    mirror : bool, default False
        Compute them on the mirror image (columns reversed).

    Returns
    -------
    Keypoints
        At most ``n_features`` key points (the strongest by SIFT response), possibly none.

    Raises
    ------
    BallisticsError
        ``scan`` is not a Scan; EmptyScanError if it has (almost) no measured pixels.

    References
    ----------
    Lowe (2004), IJCV 60, 91-110.
    """
    import cv2

    if not isinstance(scan, Scan):
        raise BallisticsError(f"keypoints() needs a ballistics.Scan, got {type(scan).__name__}.")
    p = PARAMS if params is None else {**PARAMS, **params}
    scan.require_valid(0.0, "surface")
    img, m = _grey(scan, float(p["spacing_m"]), float(p["grey_per_std"]))
    if mirror:
        img, m = img[:, ::-1].copy(), m[:, ::-1].copy()
    k = int(p["erode_px"])
    mk = cv2.erode(m.astype(np.uint8) * 255, np.ones((k, k), np.uint8))
    sift = cv2.SIFT.create(nfeatures=int(p["n_features"]))
    kp, d = sift.detectAndCompute(img, mk)
    if d is None or not kp:
        return Keypoints(np.zeros((0, 2), np.float32), np.zeros(0, np.float32), np.zeros((0, 128), np.uint8),
                         img.shape, float(p["spacing_m"]))
    order = np.argsort([-k_.response for k_ in kp])[: int(p["n_features"])]
    pts = np.array([kp[i].pt for i in order], np.float32).reshape(-1, 2)
    ang = np.array([kp[i].angle for i in order], np.float32)
    desc = np.clip(np.rint(d[order]), 0, 255).astype(np.uint8)
    return Keypoints(pts, ang, desc, img.shape, float(p["spacing_m"]))


# ----------------------------------------------------------------------------- matching
def _match_all(qs: Sequence[Keypoints], c: Keypoints, ratio: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per query key-point set, indices (iq, ic) of one-to-one nearest neighbours passing the ratio test.

    Squared L2 distances ``|q|^2 - 2 q.c + |c|^2`` from one matrix product per query set
    (the query and its mirror image); then one compiled pass
    (:func:`ballistics.kernels._two_nearest.ratio_matches`, which releases the GIL):
    the nearest and second-nearest candidate key point of each query key point
    (``|q|^2`` is added to those two only), Lowe's ratio test on the distances, and per
    candidate key point only the closest query key point.  The same matches as
    :func:`_match_all_numpy`, element by element.
    """
    if len(c) < 2 or sum(len(q) for q in qs) == 0:
        return [(np.zeros(0, np.intp), np.zeros(0, np.intp)) for _ in qs]
    CT = c.desc_f32.T
    c2 = c.sqnorm
    out = []
    for q in qs:
        if len(q) == 0:
            out.append((np.zeros(0, np.intp), np.zeros(0, np.intp)))
            continue
        iq, ic = ratio_matches(q.desc_neg2 @ CT, c2, q.sqnorm, ratio)   # row minima, ratio, one per column
        out.append((iq.astype(np.intp, copy=False), ic.astype(np.intp, copy=False)))
    return out


def _match_all_numpy(qs: Sequence[Keypoints], c: Keypoints, ratio: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """:func:`_match_all` with the ratio test and the one-per-candidate step in NumPy (reference for tests)."""
    if len(c) < 2 or sum(len(q) for q in qs) == 0:
        return [(np.zeros(0, np.intp), np.zeros(0, np.intp)) for _ in qs]
    CT = c.desc_f32.T
    r2 = ratio * ratio
    out = []
    for q in qs:
        if len(q) == 0:
            out.append((np.zeros(0, np.intp), np.zeros(0, np.intp)))
            continue
        first, d1, dsec = two_nearest((-2.0 * q.desc_f32) @ CT, c.sqnorm)
        d1 = d1 + q.sqnorm
        dsec = dsec + q.sqnorm
        iq = np.flatnonzero(np.maximum(d1, 0) < r2 * np.maximum(dsec, 0))
        out.append((iq, iq) if len(iq) == 0 else _one_per_candidate(iq, first[iq], d1[iq]))
    return out


def _one_per_candidate(iq: np.ndarray, ic: np.ndarray, dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Matches ``iq -> ic`` reduced to one per candidate key point (the closest)."""
    order = np.lexsort((dist, ic))          # by candidate key point, closest first
    ic_s, iq_s = ic[order], iq[order]
    keep = np.ones(len(order), bool)
    keep[1:] = ic_s[1:] != ic_s[:-1]
    return iq_s[keep].astype(np.intp), ic_s[keep].astype(np.intp)


def _match_all_reference(qs: Sequence[Keypoints], c: Keypoints, ratio: float
                         ) -> list[tuple[np.ndarray, np.ndarray]]:
    """The first matcher (one ``argpartition`` over the stacked matrix): reference for tests."""
    sizes = [len(q) for q in qs]
    if len(c) < 2 or sum(sizes) == 0:
        return [(np.zeros(0, np.intp), np.zeros(0, np.intp)) for _ in qs]
    Q = np.vstack([q.desc_f32 for q in qs]) if len(qs) > 1 else qs[0].desc_f32
    C = c.desc_f32
    d2 = Q @ C.T
    d2 *= -2.0
    d2 += (C * C).sum(1)[None, :]
    d2 += (Q * Q).sum(1)[:, None]
    two = np.argpartition(d2, 1, axis=1)[:, :2]
    rows = np.arange(len(Q))
    a, b = d2[rows, two[:, 0]], d2[rows, two[:, 1]]
    first = np.where(a <= b, two[:, 0], two[:, 1])
    d1, dsec = np.minimum(a, b), np.maximum(a, b)
    ok = np.maximum(d1, 0) < (ratio * ratio) * np.maximum(dsec, 0)
    out = []
    start = 0
    for n in sizes:
        sl = slice(start, start + n)
        start += n
        iq = np.flatnonzero(ok[sl])
        if len(iq) == 0:
            out.append((iq, iq))
            continue
        out.append(_one_per_candidate(iq, first[sl][iq], d1[sl][iq]))
    return out


@functools.lru_cache(maxsize=4096)
def _hypothesis_pairs(seed: int, n: int, n_hyp: int) -> tuple[np.ndarray, np.ndarray]:
    """The pairs of matches a fresh generator of ``seed`` draws for ``n`` matches (read-only, cached)."""
    rng = np.random.default_rng(seed)
    i = rng.integers(0, n, n_hyp)
    j = rng.integers(0, n, n_hyp)
    i.flags.writeable = j.flags.writeable = False
    return i, j


def rigid_ransac(a: np.ndarray, b: np.ndarray, tol: float, n_hyp: int, rng: np.random.Generator | int
                 ) -> tuple[int, float, np.ndarray, np.ndarray]:
    """Best rigid motion b ~ R a + t by RANSAC over two-point hypotheses.

    Each hypothesis is two matches whose segments agree in length; its rotation turns
    the one segment's direction into the other's, its translation takes the first point
    onto its match.  The hypotheses are scored in compiled loops
    (:func:`ballistics.kernels._rigid_hypotheses.best_rigid_hypothesis`); the best one's
    inliers are refitted by least squares (Procrustes without scale) and the refit is
    kept when it has at least as many inliers.

    Parameters
    ----------
    a, b : numpy.ndarray, shape (n, 2)
        Matched points (x, y), pixels.
    tol : float
        Inlier distance, pixels.
    n_hyp : int
        Number of hypotheses.
    rng : numpy.random.Generator or int
        Draws the hypotheses' pairs of matches; an int is the seed of a fresh
        generator (the same pairs, cached per number of matches).

    Returns
    -------
    inliers : int
    angle_deg : float
    t : numpy.ndarray, shape (2,)
    inlier_mask : numpy.ndarray of bool
    """
    n = len(a)
    if n < 2:
        return 0, 0.0, np.zeros(2), np.zeros(n, bool)
    if isinstance(rng, (int, np.integer)):
        i, j = _hypothesis_pairs(int(rng), n, int(n_hyp))
    else:
        i = rng.integers(0, n, n_hyp)
        j = rng.integers(0, n, n_hyp)
    k, cnt, c, s, t = best_rigid_hypothesis(a, b, i, j, tol)   # the hypotheses, compiled
    if k < 0:
        return 0, 0.0, np.zeros(2), np.zeros(n, bool)
    px = c * a[:, 0] - s * a[:, 1] + t[0]                         # the kernel's residuals
    py = s * a[:, 0] + c * a[:, 1] + t[1]
    mask = (px - b[:, 0]) ** 2 + (py - b[:, 1]) ** 2 < tol * tol
    # refine on the inliers (Kabsch / Procrustes without scale)
    if mask.sum() >= 2:
        A, B = a[mask], b[mask]
        ca, cb = A.mean(0), B.mean(0)
        H = (A - ca).T @ (B - cb)
        ang = np.arctan2(H[0, 1] - H[1, 0], H[0, 0] + H[1, 1])
        R = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
        tt = cb - R @ ca
        r2 = ((a @ R.T + tt - b) ** 2).sum(1)
        m2 = r2 < tol * tol
        if m2.sum() >= mask.sum():
            return int(m2.sum()), float(np.degrees(ang)), tt, m2
    return int(cnt), float(np.degrees(np.arctan2(s, c))), t, mask


def verify(query: Keypoints | Sequence[Keypoints], candidate: Keypoints,
           params: dict[str, Any] | None = None) -> Verification:
    """Verify a candidate against a query: matched SIFT key points under one rigid motion.

    Parameters
    ----------
    query : Keypoints or (Keypoints, Keypoints)
        The query's key points, or (key points, key points of its mirror image) to also
        try the mirrored query.
    candidate : Keypoints
        The stored scan's key points (from its stage-2 blob).
    params : dict, optional
        Overrides of :data:`PARAMS` (``ratio``, ``inlier_px``, ``n_hypotheses``, ``seed``).

    Returns
    -------
    Verification
        ``inliers`` is the score (higher = more likely the same breech face).

    References
    ----------
    Lowe (2004); Fischler & Bolles (1981).
    """
    p = PARAMS if params is None else {**PARAMS, **params}
    qs = (query,) if isinstance(query, Keypoints) else tuple(query)
    if not qs or not all(isinstance(q, Keypoints) for q in qs) or not isinstance(candidate, Keypoints):
        raise BallisticsError("verify() needs Keypoints (see ballistics.retrieval._verify_sift.keypoints).")
    if any(abs(q.spacing_m - candidate.spacing_m) > 1e-3 * candidate.spacing_m for q in qs):
        raise BallisticsError("query and candidate key points were computed at different pixel sizes.")
    best = Verification(0, 0)
    for mirrored, (q, (iq, ic)) in enumerate(zip(qs, _match_all(qs, candidate, float(p["ratio"])))):
        if len(iq) < 2:
            if len(iq) > best.matches and best.inliers == 0:
                best = Verification(0, int(len(iq)), mirrored=bool(mirrored))
            continue
        n, ang, t, _ = rigid_ransac(q.points[iq].astype(np.float64), candidate.points[ic].astype(np.float64),
                                    float(p["inlier_px"]), int(p["n_hypotheses"]), int(p["seed"]))
        if n > best.inliers:
            best = Verification(int(n), int(len(iq)), ang, (float(t[0]), float(t[1])), bool(mirrored))
    return best


@with_compute_threads(opencv=True)
def query_keypoints(scan: Scan, params: dict[str, Any] | None = None, mirror: bool = True
                    ) -> tuple[Keypoints, ...]:
    """The query side of stage 2: key points of ``scan`` and, if ``mirror``, of its mirror image.

    OpenCV runs on the engine's compute threads (one unless :func:`ballistics.threads`
    says otherwise), restored afterwards.
    """
    kp = keypoints(scan, params)
    if not mirror:
        return (kp,)
    return kp, keypoints(scan, params, mirror=True)


def blob(scan: Scan) -> bytes:
    """Stage-2 blob of an extracted surface (stored at ingest): :meth:`Keypoints.to_bytes`."""
    try:
        return keypoints(scan).to_bytes()
    except EmptyScanError:
        raise
