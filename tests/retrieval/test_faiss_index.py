"""SignatureIndex (FAISS): exact search against a NumPy twin, approximate kinds, removal, persistence."""

from __future__ import annotations

import os

import numpy as np
import pytest

from ballistics import BallisticsError, DatabaseError
from ballistics.retrieval import FLAT_LIMIT, SignatureIndex, choose_kind


def _unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def clustered():
    """2 000 unit vectors in 200 clusters of 10, 64-d; queries are fresh cluster members."""
    rng = np.random.default_rng(7)
    centres = rng.standard_normal((200, 64))
    X = _unit(np.repeat(centres, 10, axis=0) + 0.4 * rng.standard_normal((2000, 64)))
    Q = _unit(centres[:40] + 0.4 * rng.standard_normal((40, 64)))
    ids = np.arange(2000, dtype=np.int64) * 5 + 11  # not 0..n-1
    return ids, X, Q


def _brute(ids, X, Q, k):
    """Obvious exact search: full similarity matrix, argsort."""
    S = Q.astype(np.float64) @ X.T.astype(np.float64)
    o = np.argsort(-S, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(S, o, 1), ids[o]


def test_flat_equals_bruteforce(clustered):
    ids, X, Q = clustered
    idx = SignatureIndex.build(ids, X, kind="auto")
    assert idx.kind == "flat" and idx.ntotal == 2000
    D, I = idx.search(Q, 10)
    Db, Ib = _brute(ids, X, Q, 10)
    np.testing.assert_allclose(D, Db, atol=1e-5)
    assert (I == Ib).mean() > 0.99  # ties aside, identical
    # real signatures as input too
    from ballistics import datasets
    from ballistics.retrieval import signature
    R = np.array([signature(s) for s in datasets.fadul("processed")])
    ri = SignatureIndex.build(np.arange(6) + 100, R)
    Dr, Ir = ri.search(R, 6)
    Dbr, Ibr = _brute(np.arange(6) + 100, R, R, 6)
    np.testing.assert_allclose(Dr, Dbr, atol=1e-5)
    np.testing.assert_array_equal(Ir[:, 0], np.arange(6) + 100)


@pytest.mark.parametrize("kind", ["ivf", "ivfsq", "hnsw", "ivfpq"])
def test_approximate_kinds_recall(clustered, kind):
    ids, X, Q = clustered
    idx = SignatureIndex.build(ids, X, kind=kind, pq_m=16)  # pq_m: ivfpq only (16 bytes per vector)
    assert idx.kind == kind
    _, I = idx.search(Q, 10)
    _, Ib = _brute(ids, X, Q, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(I.tolist(), Ib.tolist())])
    assert recall > (0.5 if kind == "ivfpq" else 0.9), recall
    flat_bytes = SignatureIndex.build(ids, X, kind="flat").memory_bytes()
    if kind in ("ivfsq", "ivfpq"):  # quantised codes: smaller than the raw vectors
        assert 0 < idx.memory_bytes() < 0.5 * flat_bytes
    else:  # raw vectors plus lists / graph links
        assert idx.memory_bytes() > flat_bytes


@pytest.mark.parametrize("kind", ["flat", "ivf", "ivfsq", "hnsw"])
def test_remove_add_and_persist(clustered, kind, tmp_path):
    ids, X, Q = clustered
    idx = SignatureIndex.build(ids[:1500], X[:1500], kind=kind)
    idx.add(ids[1500:], X[1500:])
    assert idx.ntotal == 2000
    _, I = idx.search(X[:3], 1)
    np.testing.assert_array_equal(I[:, 0], ids[:3])
    assert idx.remove(ids[:3]) == 3
    assert idx.ntotal == 1997
    _, I = idx.search(X[:3], 5)
    assert not set(ids[:3].tolist()) & set(I.ravel().tolist())
    assert idx.remove(np.array([999_999])) == 0
    p = tmp_path / "x.faiss"
    idx.save(p)
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp-")]
    back = SignatureIndex.load(p)
    assert back.kind == kind and back.ntotal == 1997
    np.testing.assert_array_equal(back.ids(), idx.ids())
    np.testing.assert_array_equal(back.search(Q, 5)[1], idx.search(Q, 5)[1])


def test_corrupt_or_mismatched_files_raise(clustered, tmp_path):
    ids, X, _ = clustered
    idx = SignatureIndex.build(ids[:100], X[:100])
    p = tmp_path / "x.faiss"
    idx.save(p)
    raw = bytearray(p.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    p.write_bytes(bytes(raw))
    with pytest.raises(DatabaseError, match="side-car"):
        SignatureIndex.load(p)
    p.write_bytes(b"")
    with pytest.raises(DatabaseError):
        SignatureIndex.load(p)
    with pytest.raises(DatabaseError):
        SignatureIndex.load(tmp_path / "missing.faiss")


def test_validation_and_small_cases(clustered):
    ids, X, _ = clustered
    idx = SignatureIndex(64)
    D, I = idx.search(X[:2], 3)  # empty index
    assert (I == -1).all() and np.isinf(D).all()
    idx.add(ids[:2], X[:2])
    D, I = idx.search(X[:1], 5)  # fewer entries than k: padded
    assert I.shape == (1, 5) and (I[0, 2:] == -1).all() and I[0, 0] == ids[0]
    with pytest.raises(BallisticsError):
        idx.add(ids[:1], X[:1, :10])
    with pytest.raises(BallisticsError):
        idx.add(ids[:2], np.full((2, 64), np.nan, np.float32))
    with pytest.raises(BallisticsError):
        idx.search(X[:1], 0)
    with pytest.raises(BallisticsError):
        SignatureIndex(64, kind="lsh")
    assert choose_kind(FLAT_LIMIT - 1, 640) == "flat"
    assert choose_kind(FLAT_LIMIT, 640) == "ivf"
    assert choose_kind(10_000_000, 640) == "ivfsq"


def test_ivf_probes_a_quarter_of_its_lists_also_after_loading(tmp_path):
    """The default nprobe is a quarter of the lists, a user's nprobe is kept, and a saved
    index is searched with this version's default (not the nprobe serialised with it)."""
    import faiss

    from ballistics.retrieval._faiss_index import default_nprobe
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40_000, 16)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    ids = np.arange(len(X), dtype=np.int64)
    idx = SignatureIndex.build(ids, X, kind="ivf")
    nlist = idx.params()["nlist"]
    assert nlist >= 64 and idx.params()["nprobe"] == default_nprobe(nlist) == nlist // 4
    faiss.extract_index_ivf(idx._index).nprobe = 3          # as an index saved by another version
    idx.save(tmp_path / "i.faiss")
    back = SignatureIndex.load(tmp_path / "i.faiss")
    assert back.params()["nprobe"] == nlist // 4
    own = SignatureIndex.build(ids, X, kind="ivf", nprobe=5)
    own.save(tmp_path / "o.faiss")
    assert own.params()["nprobe"] == 5 and SignatureIndex.load(tmp_path / "o.faiss").params()["nprobe"] == 5
