"""The stage-2 kernels (row minima, ratio matches, rigid hypotheses) against their NumPy twins: bit-identical."""

from __future__ import annotations

import numpy as np
import pytest

from ballistics.kernels._rigid_hypotheses import best_rigid_hypothesis
from ballistics.kernels._two_nearest import ratio_matches, two_nearest
from ballistics.retrieval._verify_sift import (
    PARAMS,
    Keypoints,
    _match_all,
    _match_all_numpy,
    _match_all_reference,
    keypoints,
    query_keypoints,
    rigid_ransac,
)


# ----------------------------------------------------------------------------- twins
def twin_two_nearest(P: np.ndarray, c2: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Plain NumPy: add the norms, argmin, blank the minimum, min again."""
    D = P + c2[None, :]
    rows = np.arange(len(D))
    first = D.argmin(axis=1)
    d1 = D[rows, first].copy()
    D[rows, first] = np.inf
    dsec = D.min(axis=1) if D.shape[1] > 1 else np.full(len(D), np.inf, np.float32)
    return first, d1, dsec


def twin_hypotheses(a, b, i, j, tol):
    """Plain NumPy over all hypotheses at once: the same float64 operations in the same order."""
    da, db = a[j] - a[i], b[j] - b[i]
    la = np.sqrt(da[:, 0] * da[:, 0] + da[:, 1] * da[:, 1])
    lb = np.sqrt(db[:, 0] * db[:, 0] + db[:, 1] * db[:, 1])
    ok = (i != j) & (np.abs(la - lb) < tol) & (la > 4 * tol)
    if not ok.any():
        return -1, 0, None, None, None
    k_ok = np.flatnonzero(ok)
    da, db, ii, den = da[ok], db[ok], i[ok], la[ok] * lb[ok]
    c = (da[:, 0] * db[:, 0] + da[:, 1] * db[:, 1]) / den
    s = (da[:, 0] * db[:, 1] - da[:, 1] * db[:, 0]) / den
    tx = b[ii, 0] - (c * a[ii, 0] - s * a[ii, 1])
    ty = b[ii, 1] - (s * a[ii, 0] + c * a[ii, 1])
    ex = c[:, None] * a[None, :, 0] - s[:, None] * a[None, :, 1] + tx[:, None] - b[None, :, 0]
    ey = s[:, None] * a[None, :, 0] + c[:, None] * a[None, :, 1] + ty[:, None] - b[None, :, 1]
    cnt = (ex * ex + ey * ey < tol * tol).sum(1)
    h = int(np.argmax(cnt))
    return int(k_ok[h]), int(cnt[h]), c[h], s[h], np.array([tx[h], ty[h]])


def twin_ratio_matches(P, c2, q2, ratio):
    """Plain NumPy: the twin's two nearest, the ratio test, then a stable sort by (column,
    distance) keeping each column's first."""
    first, d1, dsec = twin_two_nearest(P, c2)
    d1, dsec = d1 + q2, dsec + q2
    iq = np.flatnonzero(np.maximum(d1, 0) < (ratio * ratio) * np.maximum(dsec, 0))
    order = np.lexsort((d1[iq], first[iq]))
    ic_s, iq_s = first[iq][order], iq[order]
    keep = np.ones(len(order), bool)
    keep[1:] = ic_s[1:] != ic_s[:-1]
    return iq_s[keep], ic_s[keep]


def assert_same_hypothesis(a, b, i, j, tol):
    k, n, c, s, t = best_rigid_hypothesis(a, b, i, j, tol)
    k2, n2, c2, s2, t2 = twin_hypotheses(a, b, i, j, tol)
    assert (k, n) == (k2, n2)
    if k2 >= 0:
        assert (c, s) == (c2, s2) and np.array_equal(t, t2)
    return k, n


# ----------------------------------------------------------------------------- row minima
@pytest.mark.parametrize("nq,nc,integers",
                         [(7, 5, False), (300, 500, False), (40, 30, True), (5, 2, True), (3, 1, False)])
def test_two_nearest_matches_twin(nq, nc, integers):
    rng = np.random.default_rng(nq * nc)
    if integers:  # many ties: the first column must win, the second value equal the first
        P = rng.integers(-3, 3, (nq, nc)).astype(np.float32)
        c2 = rng.integers(0, 2, nc).astype(np.float32)
    else:
        P = (rng.standard_normal((nq, nc)) * 1e4).astype(np.float32)
        c2 = (rng.random(nc) * 1e4).astype(np.float32)
    f, d1, ds = two_nearest(P, c2)
    f2, e1, es = twin_two_nearest(P, c2)
    assert f.tolist() == f2.tolist()
    assert d1.dtype == ds.dtype == np.float32
    assert np.array_equal(d1, e1) and np.array_equal(ds, es)
    if integers:
        assert (d1 == ds).any()          # the ties the case is about did occur


def test_two_nearest_refuses_bad_arrays():
    P = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError):
        two_nearest(P.astype(np.float64), np.zeros(4, np.float32))
    with pytest.raises(ValueError):
        two_nearest(P, np.zeros(3, np.float32))


# ----------------------------------------------------------------------------- ratio matches
@pytest.mark.parametrize("nq,nc,integers,ratio",
                         [(7, 5, False, 0.85), (300, 500, False, 0.85), (300, 500, False, 0.99),
                          (60, 40, True, 0.85), (5, 2, True, 1.0), (200, 3, False, 0.7)])
def test_ratio_matches_match_twin(nq, nc, integers, ratio):
    rng = np.random.default_rng(nq * nc + 1)
    if integers:  # ties in rows and between rows competing for one column
        P = rng.integers(-6, 0, (nq, nc)).astype(np.float32) * 2
        c2 = rng.integers(0, 3, nc).astype(np.float32)
        q2 = rng.integers(0, 3, nq).astype(np.float32)
    else:  # descriptor-like distances: |q|^2 - 2 q.c + |c|^2 of random uint8 vectors
        Q = rng.integers(0, 60, (nq, 128)).astype(np.float32)
        C = np.vstack([Q[rng.integers(0, nq, nc // 2)] + rng.normal(0, 3, (nc // 2, 128)),
                       rng.integers(0, 60, (nc - nc // 2, 128))]).astype(np.float32)
        P = (-2.0 * Q) @ C.T
        c2, q2 = np.einsum("ij,ij->i", C, C), np.einsum("ij,ij->i", Q, Q)
    iq, ic = ratio_matches(P, c2, q2, ratio)
    jq, jc = twin_ratio_matches(P, c2, q2, ratio)
    assert iq.tolist() == jq.tolist() and ic.tolist() == jc.tolist()
    assert len(set(ic.tolist())) == len(ic)            # one match per candidate column
    if not integers and nc > 10:
        assert len(iq) > 0                             # the planted near copies matched


def test_ratio_matches_refuse_bad_input():
    P = np.zeros((3, 4), np.float32)
    c2, q2 = np.zeros(4, np.float32), np.zeros(3, np.float32)
    for bad in ((P.astype(np.float64), c2, q2, 0.8), (P, q2, q2, 0.8), (P, c2, c2, 0.8), (P, c2, q2, 0.0),
                (P, c2, q2, 1.5)):
        with pytest.raises(ValueError):
            ratio_matches(*bad)


# ----------------------------------------------------------------------------- rigid hypotheses
@pytest.mark.parametrize("n,inlier_share,seed", [(2, 1.0, 0), (12, 0.5, 1), (60, 0.3, 2), (200, 0.1, 3), (30, 0.0, 4)])
def test_rigid_hypotheses_match_twin(n, inlier_share, seed):
    rng = np.random.default_rng(seed)
    a = rng.random((n, 2)) * 400
    th = rng.uniform(0, 2 * np.pi)
    R = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    b = a @ R.T + rng.uniform(-50, 50, 2) + rng.normal(0, 1.5, (n, 2))
    out = rng.random(n) >= inlier_share
    b[out] = rng.random((int(out.sum()), 2)) * 400
    i, j = rng.integers(0, n, 400), rng.integers(0, n, 400)
    k, cnt = assert_same_hypothesis(a, b, i, j, 6.0)
    if inlier_share >= 0.3 and n >= 12:
        assert cnt >= 0.25 * n           # the planted motion was found


def test_rigid_hypotheses_none_kept():
    a = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]])    # segments shorter than 4 tol
    assert best_rigid_hypothesis(a, a, np.array([0, 1]), np.array([1, 2]), 6.0)[:2] == (-1, 0)
    assert twin_hypotheses(a, a, np.array([0, 1]), np.array([1, 2]), 6.0)[:2] == (-1, 0)
    assert best_rigid_hypothesis(a, a, np.zeros(0, np.int64), np.zeros(0, np.int64), 6.0)[:2] == (-1, 0)


def test_rigid_hypotheses_refuse_bad_arrays():
    a = np.zeros((4, 2))
    with pytest.raises(ValueError):
        best_rigid_hypothesis(a, np.zeros((3, 2)), np.array([0]), np.array([1]), 6.0)
    with pytest.raises(ValueError):
        best_rigid_hypothesis(a, a, np.array([0]), np.array([4]), 6.0)


# ----------------------------------------------------------------------------- real key points
@pytest.fixture(scope="module")
def real(sample):
    return [keypoints(s) for s in sample], [query_keypoints(s) for s in sample]


def test_stage2_kernels_match_twins_on_real_keypoints(real):
    """Every ordered pair of the bundled scans, as given and mirrored, at the production settings:
    the compiled row minima give the matches of the reference matcher, and the compiled
    hypotheses the twin's choice on the hypotheses RANSAC draws."""
    kps, queries = real
    ratio, tol, n_hyp = float(PARAMS["ratio"]), float(PARAMS["inlier_px"]), int(PARAMS["n_hypotheses"])
    best = []
    for qi, qs in enumerate(queries):
        for ci, cand in enumerate(kps):
            if qi == ci:
                continue
            for q in qs:
                P = (-2.0 * q.desc_f32) @ cand.desc_f32.T
                f, d1, ds = two_nearest(P, cand.sqnorm)
                f2, e1, es = twin_two_nearest(P, cand.sqnorm)
                assert f.tolist() == f2.tolist() and np.array_equal(d1, e1) and np.array_equal(ds, es)
            for q, (iq, ic), (jq, jc), (kq, kc) in zip(qs, _match_all(qs, cand, ratio),
                                                        _match_all_reference(qs, cand, ratio),
                                                        _match_all_numpy(qs, cand, ratio)):
                assert iq.tolist() == jq.tolist() == kq.tolist() and ic.tolist() == jc.tolist() == kc.tolist()
                if len(iq) < 2:
                    continue
                a, b = q.points[iq].astype(np.float64), cand.points[ic].astype(np.float64)
                rng = np.random.default_rng(int(PARAMS["seed"]))
                i, j = rng.integers(0, len(a), n_hyp), rng.integers(0, len(a), n_hyp)
                best.append(assert_same_hypothesis(a, b, i, j, tol)[1])
                n, ang, t, mask = rigid_ransac(a, b, tol, n_hyp, np.random.default_rng(int(PARAMS["seed"])))
                assert n == int(mask.sum()) and n >= best[-1]      # the refit never loses inliers
                n2, ang2, t2, mask2 = rigid_ransac(a, b, tol, n_hyp, int(PARAMS["seed"]))  # cached pairs
                assert (n2, ang2) == (n, ang) and np.array_equal(t2, t) and np.array_equal(mask2, mask)
    assert len(best) > 20 and max(best) >= 10                      # mates were among the pairs


def test_keypoints_roundtrip_keeps_kernel_inputs(real):
    """The stored blob gives the kernels the same float32 descriptors and norms."""
    kp = real[0][0]
    back = Keypoints.from_bytes(kp.to_bytes())
    assert np.array_equal(back.desc_f32, kp.desc_f32) and np.array_equal(back.sqnorm, kp.sqnorm)
