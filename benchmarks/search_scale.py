"""The whole cascade among decoys: recall and time per stage at N entries, for each stage-1 design.

Run (repository root, venv active; ``search_features.py features`` and ``decoys-real`` first)::

    python benchmarks/search_scale.py --entries 10000 100000 --design global local
    python benchmarks/search_scale.py --queries ../shared/data/dfsc/ground_truth.csv --entries 10000
    python benchmarks/bench_search.py scale --queries LABELLED.csv --entries N     # the same
    python benchmarks/bench_search.py scale --entries 10000 --design fuseddb --threads 2

With ``--threads N`` the timed queries are timed in wall seconds as ``db search
--threads N`` runs them (votes, query key points, stage 2 with ``verify_many`` and
stage 3's comparisons live, all on N threads); without it, in CPU seconds of one thread.

Queries: by default the 54 real breech faces of ``../shared/data`` (40 Fadul, 14 DFSC);
with ``--queries LABELLED.csv`` (columns ``file,firearm``; files relative to the CSV's
folder, raw or processed: a scan that :func:`ballistics.features.looks_raw` is extracted
first) every scan of the CSV with a mate in it.  The collection holds those scans plus
decoys up to N entries: the base decoys (300 synthetic surfaces and 6 augmented
copies of each real scan) and replicas of them.  A query never meets a decoy derived from
its own firearm: decoys derived from a real scan whose file has the same SHA-256 as a
scan of the query's firearm are left out of its search.

Designs of stage 1 (``--design``):

* ``global``: the 640-value signature (VLAD + polar, synthetic codebook), exact inner
  product; a replica is its base signature plus Gaussian noise (sigma 0.02 per value).
* ``local``: the key-point inverted file (:class:`ballistics.retrieval.LocalIndex`); a
  replica keeps a random 85 % of its base's postings, turned by a random rotation, with
  one random bit of the Hamming code flipped on half of them and 10 % moved to a random word.
* ``fused``: both, as a ``local-sift`` database searches: the signatures' list of depth
  d plus the votes' best ``round(d * --votes-per-depth)`` (250 for the default 1,000).
* ``vlad4096`` / ``fused4096``: the 4,096-value VLAD signature (``search_vlad_design.py``,
  not shipped) alone, and with the votes instead of the 640-value signature.
* ``globaldb`` / ``fuseddb``: as ``global`` / ``fused``, with the signatures indexed as a
  database indexes them (``SignatureIndex``, ``kind="auto"``: IVF at these sizes) instead
  of the exact search.

Stage 2 verifies the short list against the real stored key points (replicas of a base
decoy share its key points; verified again for timing on the timed queries); stage 3
compares real candidates with ``compare`` (cached per pair).  The last line reads
``recall@10 R hit@1 H median S s/query`` (the last size and design).
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    PairCompare,
    _decoy_bases,
    _decoy_pool,
    _load,
    _search_excluding,
    cv1,
    log,
    parser,
    real_scans,
    setup_logging,
)
from search_vlad_design import Vlad4096Stage1  # noqa: E402

DEPTHS = [10, 100, 1000]


def load_queries(path: Path) -> tuple[list, list[str], list[str]]:
    """Scans (breech faces), names and firearms of a labelled CSV (``file,firearm``).

    Files are relative to the CSV's folder (or absolute); raw scans are extracted first.
    Column names are matched without case or surrounding spaces, a UTF-8 byte-order mark
    is accepted.  A line whose file cannot be read or extracted, whose file or firearm is
    empty, or whose file repeats an earlier line's (same SHA-256) is left out with a
    warning naming the line; the run stops with a message when no firearm keeps two scans.
    """
    from ballistics import extract_breech_face, read_scan
    from ballistics.errors import BallisticsError
    from ballistics.features import looks_raw
    if not path.is_file():
        raise SystemExit(f"--queries: {path} is not a file")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            cols = {str(c).strip().lower(): c for c in (reader.fieldnames or [])}
            if "file" not in cols or "firearm" not in cols:
                raise SystemExit(f"--queries: {path} needs the columns file,firearm (it has: "
                                 f"{', '.join(map(str, reader.fieldnames or [])) or 'none'})")
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise SystemExit(f"--queries: {path} is not a readable CSV file ({exc})") from exc
    scans, names, fa, seen = [], [], [], {}
    for line, r in enumerate(rows, 2):
        f, arm = (r.get(cols["file"]) or "").strip(), (r.get(cols["firearm"]) or "").strip()
        if not f or not arm:
            log.warning("--queries line %d left out: empty file or firearm", line)
            continue
        try:
            s = read_scan(path.parent / f)
            if looks_raw(s):
                s = extract_breech_face(s)
        except (BallisticsError, OSError) as exc:
            log.warning("--queries line %d (%s) left out: %s", line, f, exc)
            continue
        if _sha(s) in seen:
            log.warning("--queries line %d (%s) left out: the same file as line %d", line, f, seen[_sha(s)])
            continue
        seen[_sha(s)] = line
        scans.append(s)
        names.append(Path(f).stem)
        fa.append(arm)
    if not any(fa.count(x) >= 2 for x in set(fa)):
        raise SystemExit(f"--queries: no firearm of {path} has two readable scans: nothing to search for")
    log.info("--queries: %d scans of %d firearms from %s", len(scans), len(set(fa)), path)
    return scans, names, fa


def _sha(scan) -> str:
    return str(scan.provenance.sha256)


class Collection:
    """Queries/mates plus the decoy bases, with the firearms each decoy may not meet."""

    def __init__(self, a: argparse.Namespace) -> None:
        from ballistics.retrieval._signature import signature
        from ballistics.retrieval._verify_sift import Keypoints, keypoints
        self.feats = feats = _load()
        cache_scans, *_ = real_scans()
        cache_fa = feats["firearms"]
        if a.queries:
            self.scans, self.names, self.fa = load_queries(Path(a.queries))
            cb = feats["codebook_synth"]
            self.sig = np.array([signature(s, codebook=cb) for s in self.scans], np.float32)
            self.kps = [keypoints(s) for s in self.scans]
            self.source = [Path(a.queries).stem] * len(self.scans)
        else:
            self.scans, self.names, self.fa = cache_scans, list(feats["names"]), list(cache_fa)
            self.sig = feats["real"]["sig_synth"].astype(np.float32)
            self.kps = [Keypoints.from_bytes(b) for b in feats["real"]["blobs"]]
            self.source = [str(x) for x in feats["source"]]
        # decoy firearm labels a query's firearm must not meet: same file bytes = same source
        by_sha: dict[str, str] = {_sha(s): f for s, f in zip(cache_scans, cache_fa)}
        self.banned_labels: dict[str, set[str]] = {}
        for s, f in zip(self.scans, self.fa):
            lab = by_sha.get(_sha(s))
            self.banned_labels.setdefault(f, set())
            if lab is not None:
                self.banned_labels[f].add(lab)
        _, self.dblobs, dfa = _decoy_bases(feats, a.decoys)
        self.dk = [Keypoints.from_bytes(b) for b in self.dblobs]
        self.dfa = np.array([str(x) for x in dfa])
        self.n = len(self.scans)

    def mates(self, qi: int) -> set[int]:
        return {j for j in range(self.n) if j != qi and self.fa[j] == self.fa[qi]}

    def banned(self, qi: int, base: np.ndarray) -> np.ndarray:
        """Collection indices of the decoys the query may not meet."""
        labs = self.banned_labels.get(self.fa[qi], set())
        if not labs:
            return np.zeros(0, np.int64)
        return self.n + np.flatnonzero(np.isin(self.dfa[base], list(labs)))


# ----------------------------------------------------------------------------- stage-1 designs
class GlobalStage1:
    """Exact inner product over the 640-value signatures (decoys: base + noise replicas)."""

    name = "global-640 (flat f32)"

    def __init__(self, col: Collection, size: int, a: argparse.Namespace) -> None:
        import faiss
        rng = np.random.default_rng(size)
        c = time.perf_counter()
        Xd, self.base = _decoy_pool(col.feats, size - col.n, a.decoys, rng)
        X = np.vstack([col.sig, Xd])
        self.idx = faiss.IndexFlatIP(X.shape[1])
        self.idx.add(X)
        self.build_s = time.perf_counter() - c
        self.bytes_per_entry = 4 * X.shape[1]
        self.col = col

    def search(self, qi: int, depth: int) -> list[int]:
        banned = self.col.banned(qi, self.base)
        _, I = _search_excluding(self.idx, self.col.sig[qi:qi + 1], depth + 1, banned)
        return [j for j in I[0].tolist() if j != qi and j >= 0]


class ProductGlobalStage1(GlobalStage1):
    """The signatures as a database indexes them: :class:`SignatureIndex` with ``kind="auto"``
    (IVF from 10^4-10^5 entries on: ``nlist ~ sqrt(n)``, ``nprobe = max(8, nlist / 16)``)."""

    def __init__(self, col: Collection, size: int, a: argparse.Namespace) -> None:
        from ballistics.retrieval._faiss_index import SignatureIndex
        rng = np.random.default_rng(size)
        c = time.perf_counter()
        Xd, self.base = _decoy_pool(col.feats, size - col.n, a.decoys, rng)
        X = np.vstack([col.sig, Xd])
        self.sidx = SignatureIndex.build(np.arange(len(X), dtype=np.int64), X, "auto")
        self.idx = self.sidx._index
        self.build_s = time.perf_counter() - c
        self.bytes_per_entry = self.sidx.memory_bytes() / len(X)
        self.name = f"global-640 ({self.sidx.kind}, as a database)"
        self.col = col

    def search(self, qi: int, depth: int) -> list[int]:
        import faiss
        banned = self.col.banned(qi, self.base)
        q = self.col.sig[qi:qi + 1]
        if len(banned) and hasattr(self.idx, "nprobe"):
            sel = faiss.IDSelectorNot(faiss.IDSelectorBatch(banned.astype(np.int64)))
            _, I = self.idx.search(q, depth + 1, params=faiss.SearchParametersIVF(sel=sel, nprobe=self.idx.nprobe))
        else:
            _, I = _search_excluding(self.idx, q, depth + 1, banned)
        return [j for j in I[0].tolist() if j != qi and j >= 0]


def local_replicas(enc: list[tuple[np.ndarray, np.ndarray, np.ndarray]], base: np.ndarray, first: int,
                   rng: np.random.Generator, n_words: int) -> tuple[np.ndarray, ...]:
    """Postings (word, entry, code, angle) of decoys ``first + i`` built from base ``base[i]``.

    The first ``len(enc)`` decoys are the bases themselves; later ones are replicas
    (85 % of the base's postings, a random rotation, one flipped code bit on half, 10 %
    moved to a random word)."""
    W, I, C, A = [], [], [], []
    nb = len(enc)
    for i, b in enumerate(base):
        w, c, ang = enc[int(b)]
        if i >= nb:
            keep = rng.random(len(w)) < 0.85
            w, c, ang = w[keep].copy(), c[keep].copy(), ang[keep]
            ang = ((ang.astype(np.int64) + int(rng.integers(0, 256))) % 256).astype(np.uint8)
            flip = rng.random(len(c)) < 0.5
            c[flip] ^= (np.uint32(1) << rng.integers(0, 32, int(flip.sum())).astype(np.uint32))
            mv = rng.random(len(w)) < 0.10
            w[mv] = rng.integers(0, n_words, int(mv.sum()))
        W.append(w)
        C.append(c)
        A.append(ang)
        I.append(np.full(len(w), first + i, np.int32))
    return np.concatenate(W), np.concatenate(I), np.concatenate(C), np.concatenate(A)


class LocalStage1:
    """Key-point inverted file with orientation-consistent votes (decoys: posting replicas)."""

    name = "local (key points, HE + WGC)"

    def __init__(self, col: Collection, size: int, a: argparse.Namespace) -> None:
        from ballistics.retrieval._local_index import LOCAL_PARAMS, LocalIndex, encode
        from ballistics.retrieval._verify_sift import query_keypoints
        p = {**LOCAL_PARAMS, **({"n_keypoints": a.local_keypoints} if a.local_keypoints else {}),
             **({"multi_assign": a.multi_assign} if a.multi_assign else {})}
        nk = int(p["n_keypoints"])
        rng = np.random.default_rng(size)
        c = time.perf_counter()
        _, self.base = _decoy_pool(col.feats, size - col.n, a.decoys, np.random.default_rng(size))
        enc = [tuple(x[:, 0] if x.ndim == 2 else x for x in encode(k, nk)) for k in col.dk]
        renc = [tuple(x[:, 0] if x.ndim == 2 else x for x in encode(k, nk)) for k in col.kps]
        W = [e[0] for e in renc]
        I = [np.full(len(e[0]), i, np.int32) for i, e in enumerate(renc)]
        C = [e[1] for e in renc]
        A = [e[2] for e in renc]
        step = 20000
        for s in range(0, len(self.base), step):
            w, i, cc, aa = local_replicas(enc, self.base[s:s + step], col.n + s, rng, int(p["words_per_half"]) ** 2)
            W.append(w)
            I.append(i)
            C.append(cc)
            A.append(aa)
        self.idx = LocalIndex.from_postings(np.concatenate(W), np.concatenate(I), np.concatenate(C),
                                            np.concatenate(A), p)
        self.build_s = time.perf_counter() - c
        self.bytes_per_entry = self.idx.memory_bytes() / size
        self.col = col
        self.qkp = {}
        self._qk = query_keypoints
        self.vote_keypoints = a.vote_keypoints
        self.max_list: int | None = None  # stop list: longer word lists are not scanned

    def search(self, qi: int, depth: int) -> list[int]:
        if qi not in self.qkp:
            self.qkp[qi] = self._qk(self.col.scans[qi])
        banned = np.append(self.col.banned(qi, self.base), qi)
        q = self.qkp[qi]
        if self.vote_keypoints:  # the strongest come first
            n = self.vote_keypoints
            q = tuple(replace(k, points=k.points[:n], angles=k.angles[:n], descriptors=k.descriptors[:n],
                              _desc_f32=None, _sqnorm=None) for k in q)
        _, I = self.idx.search(q, depth, exclude=banned, max_list=self.max_list)
        return [j for j in I[0].tolist() if j >= 0]


class FusedStage1:
    """Both rankings, as a ``local-sift`` database searches: the global list plus the votes' best.

    The merge is the product's (:func:`ballistics.retrieval.merge_ranked`): a list of
    depth ``d`` is the global design's first ``d`` entries plus the local design's first
    ``round(d * --votes-per-depth)`` (the product's 250 votes for a short list of 1,000),
    so it holds up to ``1.25 d`` candidates (the two designs index the same entries)."""

    global_design: type = GlobalStage1

    def __init__(self, col: Collection, size: int, a: argparse.Namespace, built: dict | None = None) -> None:
        """``built``: designs already built at this size, by class (reused, not built again)."""
        built = {} if built is None else built
        self.loc = built.get(LocalStage1) or LocalStage1(col, size, a)
        self.g = built.get(self.global_design) or self.global_design(col, size, a)
        self.share = a.votes_per_depth
        self.name = f"fused: + votes {self.share:g} x depth, {self.g.name}"
        self.build_s = self.g.build_s + self.loc.build_s
        self.bytes_per_entry = self.g.bytes_per_entry + self.loc.bytes_per_entry
        self.base, self.qkp, self._qk = self.g.base, self.loc.qkp, self.loc._qk
        assert np.array_equal(self.g.base, self.loc.base)

    def search(self, qi: int, depth: int) -> list[int]:
        from ballistics.retrieval import merge_ranked
        nv = int(round(depth * self.share))
        v = self.loc.search(qi, nv) if nv else []
        return [int(k) for k, _ in merge_ranked(self.g.search(qi, depth)[:depth], v)]


class Fused4096Stage1(FusedStage1):
    """The votes with the 4,096-value VLAD instead of the 640-value signature (not shipped)."""

    global_design = Vlad4096Stage1


class FusedProductStage1(FusedStage1):
    """The votes with the signatures indexed as a database indexes them (IVF at these sizes)."""

    global_design = ProductGlobalStage1


DESIGNS = {"global": GlobalStage1, "local": LocalStage1, "fused": FusedStage1, "vlad4096": Vlad4096Stage1,
           "fused4096": Fused4096Stage1, "globaldb": ProductGlobalStage1, "fuseddb": FusedProductStage1}


# ----------------------------------------------------------------------------- the run
def build(col: Collection, size: int, design: str, a: argparse.Namespace, built: dict):
    """The design's stage 1 at ``size``, reusing the indices in ``built`` (and adding its own)."""
    cls = DESIGNS[design]
    st = cls(col, size, a, built) if design.startswith("fused") else (built.get(cls) or cls(col, size, a))
    for part in (st, getattr(st, "g", None), getattr(st, "loc", None)):
        if part is not None:
            built[type(part)] = part
    return st


def collections_with_both(a: argparse.Namespace):
    """For each ``--entries`` size: (collection, size, votes' index, signatures' exact index), one thread."""
    import faiss
    faiss.omp_set_num_threads(1)
    cv1()
    col = Collection(a)
    for size in (a.entries or a.sizes):
        built: dict = {}
        n = max(size, col.n)
        yield col, size, build(col, n, "local", a, built), build(col, n, "global", a, built)


def run(col: Collection, size: int, design: str, a: argparse.Namespace, pc: PairCompare,
        built: dict | None = None) -> tuple:
    from ballistics.retrieval import verify_many
    from ballistics.retrieval._cascade import CascadeHit
    from ballistics.retrieval._verify_sift import query_keypoints, verify
    clock = time.perf_counter if a.threads else time.process_time  # wall on threads, else CPU of one
    t2_threads = 0.0
    st = build(col, size, design, a, {} if built is None else built)
    s1 = {d: [] for d in DEPTHS}
    r10, h1, t1s, tqs, t2s, t3s, tends, nlist, qsrc = [], [], [], [], [], [], [], [], []
    dump: list[dict] = []
    ver: dict = {}
    for qi in range(col.n):
        mates = col.mates(qi)
        if not mates:
            continue
        timed = qi % a.time_every == 0
        c0 = clock()
        qkp = query_keypoints(col.scans[qi])
        tq = clock() - c0
        if hasattr(st, "qkp"):  # the local designs reuse the query's key points (timed above)
            st.qkp[qi] = qkp
        c1 = clock()
        order = st.search(qi, a.shortlist)  # the fused designs add the votes' best to it
        t1 = clock() - c1
        if not design.startswith("fused"):
            order = order[: a.shortlist]
        nlist.append(len(order))
        for d in DEPTHS:  # a fused list of depth d is not a prefix of a deeper one
            od = order[:d] if not design.startswith("fused") and d <= a.shortlist else st.search(qi, d)
            s1[d].append(len(set(od) & mates) / len(mates))
        if timed and a.threads:  # the whole list on threads, as a search verifies it
            cands = [col.kps[j] if j < col.n else col.dk[int(st.base[j - col.n])] for j in order]
            c2 = clock()
            verify_many(qkp, cands, threads=a.threads)
            t2_threads = clock() - c2
        c2 = clock()
        sc, vreal = {}, {}
        for j in order:
            if j < col.n:
                vreal[j] = verify(qkp, col.kps[j])
                sc[j] = vreal[j].inliers
            else:
                key = (qi, int(st.base[j - col.n]))
                if key not in ver:
                    ver[key] = verify(qkp, col.dk[key[1]]).inliers
                elif timed:
                    verify(qkp, col.dk[key[1]])
                sc[j] = ver[key]
        t2 = t2_threads if timed and a.threads else clock() - c2
        pos = {j: r for r, j in enumerate(order)}
        o2 = sorted(order, key=lambda j: (-sc[j], pos[j]))
        hits = [CascadeHit(key=j, stage1_score=0.0, stage2_inliers=sc[j]) for j in o2]
        t3 = 0.0
        for h in hits[: a.rerank]:
            if h.stage2_inliers >= a.min_inliers:
                if h.key < col.n:
                    cmc, s, cpu, _ = pc(qi, h.key, vreal[h.key].to_dict())
                    h.cmc_count, h.compare_score = cmc, s
                    t3 += cpu
                else:
                    log.warning("decoy %d reached stage 3 (%d inliers) for %s", h.key, h.stage2_inliers,
                                col.names[qi])
                    h.cmc_count, h.compare_score = 0, 0.0
        if timed and a.threads:  # stage 3 again, live, on threads
            head = [h for h in hits[: a.rerank] if h.stage2_inliers >= a.min_inliers and h.key < col.n]
            t3 = pc.live_wall(qi, [h.key for h in head], [vreal[h.key].to_dict() for h in head], a.threads)
        hits.sort(key=lambda h: h.sort_key())
        final = [h.key for h in hits]
        r10.append(len(set(final[:10]) & mates) / len(mates))
        h1.append(bool(final) and final[0] in mates)
        qsrc.append(col.source[qi])
        dump.append({"query": col.names[qi], "source": col.source[qi], "mates": sorted(mates), "order": order,
                     "inliers": [sc[j] for j in order], "final": final[:50],
                     "stage3": {h.key: (h.cmc_count, h.compare_score) for h in hits if h.cmc_count is not None}})
        if timed:
            t1s.append(t1)
            tqs.append(tq)
            t2s.append(t2)
            t3s.append(t3)
            tends.append(tq + t1 + t2 + t3)
    if a.dump:  # per query: the short list, its inliers, stage 3 and the final order (for offline study)
        import pickle
        with open(f"{a.dump}-{size}-{design}.pkl", "wb") as fh:
            pickle.dump(dump, fh)
    print(f"\n## {size:,} entries, stage 1 = {st.name}: {col.n} labelled scans + {size - col.n:,} decoys "
          f"({a.decoys}); {len(r10)} queries; shortlist {a.shortlist}, rerank {a.rerank}; "
          f"stage 2 verified {np.mean(nlist):.0f} candidates per query (mean)")
    print("stage-1 mate recall at depth " + ", ".join(f"{d}: {np.mean(s1[d]):.3f}" for d in DEPTHS))
    print(f"end to end: mate recall@10 {np.mean(r10):.3f}, hit@1 {np.mean(h1):.3f}")
    for src in sorted(set(qsrc)):
        m = np.array(qsrc) == src
        print(f"  {src}: {int(m.sum())} queries, recall@10 {np.mean(np.array(r10)[m]):.3f}, "
              f"hit@1 {np.mean(np.array(h1)[m]):.3f}")
    print(f"memory {st.bytes_per_entry:.0f} B/entry; build {st.build_s:.1f} s wall")
    what = f"wall s per query on {a.threads} threads" if a.threads else "CPU s per query"
    print(f"{what} ({len(t1s)} timed queries), medians: query key points (+ mirror) "
          f"{statistics.median(tqs):.3f}; stage 1 {1e3 * statistics.median(t1s):.1f} ms; stage 2 "
          f"{statistics.median(t2s):.3f}; stage 3 {statistics.median(t3s):.3f}; end to end "
          f"{statistics.median(tends):.2f} (max {max(tends):.2f})")
    return float(np.mean(r10)), float(np.mean(h1)), float(statistics.median(tends))


def cmd_scale(a: argparse.Namespace) -> None:
    cv1()
    if a.threads:  # as `db search --threads N`: votes, key points, verification and compare on N threads
        import ballistics
        ballistics.set_threads(a.threads)
    col = Collection(a)
    pc = PairCompare(col.scans, seed=a.seed, window=a.seed_window, min_inliers=a.seed_min_inliers)
    if a.queries:  # pair cache keys are indices into the default scans: keep outside queries apart
        pc.cache, pc.file = {}, pc.file.with_name(pc.file.stem + "-" + Path(a.queries).stem + ".pkl")
    res = None
    for size in (a.entries or a.sizes):
        built: dict = {}  # each index is built once per size; the fused designs reuse them
        for design in a.design:
            res = run(col, max(size, col.n), design, a, pc, built)
    assert res is not None
    print(f"recall@10 {res[0]:.3f} hit@1 {res[1]:.3f} median {res[2]:.2f} s/query")


def main(argv: list[str] | None = None) -> None:
    a = parser(__doc__, "scale").parse_args(argv)
    setup_logging()
    cmd_scale(a)


if __name__ == "__main__":
    main()
