"""The stage-1 voting kernel against its NumPy twin (random postings and real key points)."""

from __future__ import annotations

from unittest.mock import patch

import numpy as np
import pytest

import ballistics.kernels._local_votes as lv
from ballistics.kernels._local_votes import local_votes
from ballistics.retrieval import keypoints, query_keypoints
from ballistics.retrieval._local_index import LocalIndex, _vote_weights, encode


# ----------------------------------------------------------------------------- twin
def twin_votes(offsets, ids, codes, angles, w, c, a, hand, hamming, sigma, nb):
    """(key, weight) of every vote of one query descriptor set; key = (id, hand, grid bin).

    ``w``, ``c``: (n, m) words and codes of the descriptors, ``a``: (n,) their orientations.
    """
    m = w.shape[1] if w.ndim == 2 else 1
    if len(w) == 0 or len(ids) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    w, c = w.ravel(), c.ravel()
    qa = np.repeat(a, m)
    start, end = offsets[w], offsets[w + 1]
    lens = end - start
    tot = int(lens.sum())
    if tot == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    qi = np.repeat(np.arange(len(w)), lens)
    pos = np.arange(tot) - np.repeat(np.cumsum(lens) - lens, lens) + np.repeat(start, lens)
    ham = np.bitwise_count(codes[pos] ^ c[qi])
    ok = ham <= hamming
    pos, qi, ham = pos[ok], qi[ok], ham[ok]
    wt = np.exp(-(ham.astype(np.float32) / float(sigma)) ** 2)
    rot = (angles[pos].astype(np.int64) - qa[qi].astype(np.int64)) % 256
    b1 = (rot * nb) // 256
    b2 = ((rot * nb + 128) // 256) % nb + nb
    base = (ids[pos].astype(np.int64) * 2 + hand) * (2 * nb)
    # one vote per (query descriptor row, key): bursts of one descriptor count once
    keys = np.concatenate([base + b1, base + b2])
    wts = np.concatenate([wt, wt])
    qk = np.concatenate([qi, qi]).astype(np.int64)
    order = np.lexsort((-wts, qk, keys))
    keys, qk, wts = keys[order], qk[order], wts[order]
    first = np.ones(len(keys), bool)
    first[1:] = (keys[1:] != keys[:-1]) | (qk[1:] != qk[:-1])
    return keys[first], wts[first]


def twin_top(parts, nb, depth, exclude=None):
    """Scores (float64) and ids of the best ``depth`` entries, best first, ties by id."""
    keys = np.concatenate([k for k, _ in parts]) if parts else np.zeros(0, np.int64)
    wts = np.concatenate([w for _, w in parts]) if parts else np.zeros(0, np.float32)
    if len(keys) == 0:
        return np.zeros(0), np.zeros(0, np.int64)
    uk, inv = np.unique(keys, return_inverse=True)
    tot = np.bincount(inv, weights=wts)
    ent = uk // (4 * nb)
    starts = np.flatnonzero(np.r_[True, ent[1:] != ent[:-1]])
    best = np.maximum.reduceat(tot, starts)
    eids = ent[starts]
    if exclude is not None and len(exclude):
        keep = ~np.isin(eids, np.asarray(exclude, np.int64))
        eids, best = eids[keep], best[keep]
    top = np.lexsort((eids, -best))[:depth]
    return best[top], eids[top]


def twin_search(idx: LocalIndex, query, depth, exclude=None):
    """:meth:`LocalIndex.search` in NumPy: (1, depth) float32 scores and int64 ids, padded."""
    p = idx.params
    m = int(p["multi_assign"])
    nb = int(p["rotation_bins"])
    parts = []
    for hand, kp in enumerate(query[:2]):
        w, c, a = encode(kp, None, m)
        parts.append(twin_votes(idx.offsets, idx.ids, idx.codes, idx.angles, w, c, a, hand,
                                int(p["hamming"]), float(p["sigma"]), nb))
    best, eids = twin_top(parts, nb, depth, exclude)
    S = np.full((1, depth), -np.inf, np.float32)
    I = np.full((1, depth), -1, np.int64)
    S[0, :len(best)] = best
    I[0, :len(eids)] = eids
    return S, I


# ----------------------------------------------------------------------------- inputs
def random_index(rng, n_entries, n_words, per_entry, id_base=0, id_dtype=np.int32):
    """Flat postings sorted by word: offsets, ids, codes, angles."""
    n = n_entries * per_entry
    words = rng.integers(0, n_words, n)
    ids = (id_base + np.repeat(np.arange(n_entries), per_entry)).astype(id_dtype)
    # codes near a few prototypes, so that many postings pass a Hamming test
    protos = rng.integers(0, 2**32, 8, dtype=np.uint64).astype(np.uint32)
    codes = protos[rng.integers(0, 8, n)] ^ (rng.random((n, 32)) < 0.15).astype(np.uint32).dot(
        np.uint32(1) << np.arange(32, dtype=np.uint32)).astype(np.uint32)
    # an entry's postings often share a rotation (as a mate's would), some bursts in one word
    angles = ((np.repeat(rng.integers(0, 256, n_entries), per_entry) + rng.integers(-6, 7, n)) % 256).astype(np.uint8)
    order = np.argsort(words, kind="stable")
    offsets = np.zeros(n_words + 1, np.int64)
    offsets[1:] = np.cumsum(np.bincount(words, minlength=n_words))
    return offsets, ids[order], codes[order], angles[order], protos


def random_query(rng, n_kp, m, n_words, protos):
    w = rng.integers(0, n_words, (n_kp, m))
    c = protos[rng.integers(0, 8, (n_kp, m))] ^ (rng.random((n_kp, m, 32)) < 0.15).astype(np.uint32).dot(
        np.uint32(1) << np.arange(32, dtype=np.uint32)).astype(np.uint32)
    a = rng.integers(0, 256, n_kp).astype(np.uint8)
    return w.astype(np.int64), c, a


def run_kernel(offsets, ids, codes, angles, queries, hamming, sigma, nb, depth, exclude=None, threads=1):
    W = [w.ravel() for w, _, _ in queries]
    C = [c.ravel() for _, c, _ in queries]
    A = [np.repeat(a, w.shape[1]) for w, _, a in queries]
    H = [np.full(w.size, h, np.uint8) for h, (w, _, _) in enumerate(queries)]
    cat = (lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt))
    return local_votes(offsets, ids, codes, angles, cat(W, np.int64), cat(C, np.uint32), cat(A, np.uint8),
                       cat(H, np.uint8), _vote_weights(hamming, sigma), nb, depth, exclude, threads)


def run_twin(offsets, ids, codes, angles, queries, hamming, sigma, nb, depth, exclude=None):
    parts = [twin_votes(offsets, ids, codes, angles, w, c, a, h, hamming, sigma, nb)
             for h, (w, c, a) in enumerate(queries)]
    return twin_top(parts, nb, depth, exclude)


def assert_same(got, want):
    (s1, i1), (s2, i2) = got, want
    assert i1.tolist() == i2.tolist()
    assert np.array_equal(s1, s2)                                  # same sums in the same order
    assert np.array_equal(s1.astype(np.float32), s2.astype(np.float32))


# ----------------------------------------------------------------------------- random postings
@pytest.mark.parametrize("n_entries,n_words,per_entry,n_kp,depth", [
    (1, 4, 1, 1, 5),
    (50, 16, 20, 30, 10),
    (400, 64, 40, 60, 25),
    (2000, 256, 30, 120, 100),
])
@pytest.mark.parametrize("hamming", [0, 6, 9, 32])
def test_kernel_matches_twin_on_random_postings(n_entries, n_words, per_entry, n_kp, depth, hamming):
    rng = np.random.default_rng(n_entries + 7 * hamming)
    offsets, ids, codes, angles, protos = random_index(rng, n_entries, n_words, per_entry)
    queries = [random_query(rng, n_kp, 4, n_words, protos), random_query(rng, n_kp // 2 + 1, 4, n_words, protos)]
    exclude = rng.choice(n_entries, size=n_entries // 10, replace=False)
    for nb in (24, 7):
        for ex in (None, exclude):
            got = run_kernel(offsets, ids, codes, angles, queries, hamming, 6.0, nb, depth, ex)
            want = run_twin(offsets, ids, codes, angles, queries, hamming, 6.0, nb, depth, ex)
            assert_same(got, want)
            assert len(got[1]) == min(depth, len(want[1]))
    for threads in (2, 3):   # the scan split over threads: the same votes in the same order
        with patch.object(lv, "MIN_SPLIT", 0):   # these indices are small: split them anyway
            got = run_kernel(offsets, ids, codes, angles, queries, hamming, 6.0, 24, depth, exclude, threads)
        assert_same(got, run_twin(offsets, ids, codes, angles, queries, hamming, 6.0, 24, depth, exclude))


def test_split_rows_balances_the_scan():
    from ballistics.kernels._local_votes import _split_rows

    offsets = np.array([0, 100, 100, 110, 400, 401], np.int64)      # lists of 100, 0, 10, 290, 1 postings
    q_words = np.array([0, 1, 2, 3, 4, 0, 3], np.int64)
    for parts in (1, 2, 3, 7, 20):
        ranges = _split_rows(offsets, q_words, parts)
        assert ranges[0][0] == 0 and ranges[-1][1] == len(q_words)
        assert all(a < b for a, b in ranges) and all(r[1] == s[0] for r, s in zip(ranges, ranges[1:]))
        assert len(ranges) <= parts
    assert _split_rows(offsets, q_words, 2) == [(0, 4), (4, 7)]       # 400 postings then 391


def test_kernel_ties_by_id_and_depth_beyond_voted_entries():
    # every entry the same postings: all scores tie, order by id; depth past the voted entries
    rng = np.random.default_rng(3)
    n_words = 8
    one = rng.integers(0, n_words, 12)
    words = np.tile(one, 30)
    ids = np.repeat(np.arange(30), 12).astype(np.int32)
    order = np.argsort(words, kind="stable")
    offsets = np.zeros(n_words + 1, np.int64)
    offsets[1:] = np.cumsum(np.bincount(words, minlength=n_words))
    codes = np.zeros(len(words), np.uint32)
    angles = np.zeros(len(words), np.uint8)
    q = (one[:, None].astype(np.int64), np.zeros((12, 1), np.uint32), np.zeros(12, np.uint8))
    for depth in (0, 5, 30, 1000):
        got = run_kernel(offsets, ids[order], codes, angles, [q], 9, 6.0, 24, depth, [4, 2])
        want = run_twin(offsets, ids[order], codes, angles, [q], 9, 6.0, 24, depth, [4, 2])
        assert_same(got, want)
        assert got[1].tolist() == [i for i in range(30) if i not in (2, 4)][:depth]


@pytest.mark.parametrize("id_dtype,id_base", [(np.int32, 2**31 - 1000), (np.int64, 2**40), (np.int64, 0)])
def test_kernel_ids_near_type_limits(id_dtype, id_base):
    rng = np.random.default_rng(11)
    offsets, ids, codes, angles, protos = random_index(rng, 1000, 64, 20, id_base, id_dtype)
    queries = [random_query(rng, 50, 4, 64, protos), random_query(rng, 50, 4, 64, protos)]
    ex = id_base + np.arange(0, 1000, 7)
    got = run_kernel(offsets, ids, codes, angles, queries, 9, 6.0, 24, 50, ex)
    want = run_twin(offsets, ids, codes, angles, queries, 9, 6.0, 24, 50, ex)
    assert_same(got, want)
    assert got[1].min() >= id_base and got[1].max() < id_base + 1000


def test_kernel_empty_cases():
    rng = np.random.default_rng(5)
    offsets, ids, codes, angles, protos = random_index(rng, 100, 16, 10)
    q = random_query(rng, 20, 4, 16, protos)
    empty_index = (np.zeros(17, np.int64), np.zeros(0, np.int32), np.zeros(0, np.uint32), np.zeros(0, np.uint8))
    no_query = (np.zeros((0, 4), np.int64), np.zeros((0, 4), np.uint32), np.zeros(0, np.uint8))
    far = (q[0], ~q[1], q[2])                                     # every code 32 - h bits away: none passes
    for idx, qs, ham in ((empty_index, [q], 9), ((offsets, ids, codes, angles), [no_query], 9),
                         ((offsets, ids, codes, angles), [], 9), ((offsets, ids, codes, angles), [far], 0)):
        s, i = run_kernel(*idx, qs, ham, 6.0, 24, 10)
        assert len(s) == 0 and len(i) == 0 and s.dtype == np.float64 and i.dtype == np.int64
    # every voted entry excluded
    s, i = run_kernel(offsets, ids, codes, angles, [q], 32, 6.0, 24, 10, np.arange(100))
    assert len(i) == 0


def test_kernel_refuses_bad_arrays():
    rng = np.random.default_rng(1)
    offsets, ids, codes, angles, protos = random_index(rng, 10, 4, 5)
    w, c, a = random_query(rng, 5, 1, 4, protos)
    qw, qc, qa, qh = w.ravel(), c.ravel(), a, np.zeros(5, np.uint8)
    wt = _vote_weights(9, 6.0)
    ok = (offsets, ids, codes, angles, qw, qc, qa, qh, wt, 24, 5)
    local_votes(*ok)
    bad = [
        (0, offsets.astype(np.int32)), (1, ids.astype(np.float64)), (2, codes.astype(np.int64)),
        (3, angles[:-1]), (4, qw + 4), (4, qw.astype(np.int32)), (5, np.repeat(qc, 2)[::2]),
        (7, qh + 2), (8, wt.astype(np.float64)), (8, np.ones(34, np.float32)), (0, offsets[::-1].copy()),
    ]
    for k, v in bad:
        args = list(ok)
        args[k] = v
        with pytest.raises(ValueError):
            local_votes(*args)


# ----------------------------------------------------------------------------- real key points
@pytest.fixture(scope="module")
def real(sample):
    kps = [keypoints(s) for s in sample]
    return kps, [query_keypoints(s) for s in sample]


def test_search_matches_twin_on_real_keypoints(real):
    kps, queries = real
    idx = LocalIndex.build(range(len(kps)), kps)
    # a larger index: the six entries plus jittered copies under other ids
    rng = np.random.default_rng(0)
    W, I, C, A = [], [], [], []
    for i, kp in enumerate(kps):
        w, c, a = encode(kp, 300)
        for r in range(6):
            keep = rng.random(len(a)) < 0.85
            cc = c[keep, 0] ^ (np.uint32(1) << rng.integers(0, 32, int(keep.sum())).astype(np.uint32))
            W.append(w[keep, 0])
            C.append(cc)
            A.append(((a[keep].astype(np.int64) + rng.integers(0, 256)) % 256).astype(np.uint8))
            I.append(np.full(int(keep.sum()), 100 + 10 * i + r, np.int64))
    big = LocalIndex.from_postings(np.concatenate(W), np.concatenate(I), np.concatenate(C),
                                   np.concatenate(A))
    cases = {id(idx): ((3, None), (5, [0, 1])), id(big): ((80, [0, 101, 150]), (1, list(range(100, 200))))}
    for index in (idx, big):
        for q in queries:
            for depth, ex in cases[id(index)]:
                S, Ii = index.search(q, depth, exclude=ex)
                S2, I2 = twin_search(index, q, depth, ex)
                assert Ii.tolist() == I2.tolist()
                assert S.dtype == np.float32 and np.array_equal(S, S2)
            S, Ii = index.search(q[0], 4)                          # one handedness only
            S2, I2 = twin_search(index, (q[0],), 4)
            assert Ii.tolist() == I2.tolist() and np.array_equal(S, S2)
