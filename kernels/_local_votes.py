"""Stage-1 voting of an inverted file of key-point postings (Hamming embedding + weak geometry).

:func:`local_votes` does, in compiled loops, what :meth:`ballistics.retrieval.LocalIndex.search`
describes: every posting in a query descriptor's word list whose 32-bit code lies within
``len(weights) - 1`` bits of the query's code votes with weight ``weights[h]`` for
``(entry, handedness, rotation bin)`` on two interleaved grids of ``rotation_bins`` bins
(the second offset by half a bin).  A query descriptor gives at most one vote per key (its
best weight); a key's total is the sum of its votes; an entry's score is its best key's
total.  The result is the best ``depth`` entries, best first, ties by entry id.

The postings are scanned once; a vote is 16 bytes (entry and handedness; descriptor,
rotation and Hamming distance), sorted by entry with a stable radix sort and summed per
key.  Memory per query is proportional to the number of postings that pass the Hamming
test (plus one word list), never to the number of postings touched or of entries stored.

The sums are in float64, each key's votes added in the order of the query descriptors,
so scores are bit-identical to a NumPy twin that sorts votes by (key, descriptor) and
sums them with :func:`numpy.bincount`; the float32 scores of
:meth:`~ballistics.retrieval.LocalIndex.search` are therefore identical too.  Equal
scores are ordered by ascending id everywhere, including at the ``depth`` boundary (a
partial sort such as :func:`numpy.argpartition` would pick any of the tied entries there).

References
----------
Jegou, H., Douze, M., Schmid, C. (2008). Hamming embedding and weak geometric
consistency for large scale image search. ECCV.
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

# No parallel=True: ``local_votes(threads=N)`` splits the scan over Python threads (the kernels
# release the GIL), so the thread count is the caller's, per call.

__all__ = ["local_votes"]

#: Fewer postings to scan than this: one thread (starting threads would cost more than they save).
MIN_SPLIT = 1_000_000


@intrinsic
def _popcount(typingctx, x):
    """Number of set bits of a uint64 (one ``popcnt`` instruction where the CPU has it)."""
    if not isinstance(x, types.Integer) or x.bitwidth != 64:
        return None

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return types.int64(x), codegen


@njit(cache=True, nogil=True)
def _gather(offsets, ids, codes, angles, q_words, q_codes, q_angles, q_hands, max_h, q0, q1):
    """Votes of every posting within ``max_h`` bits for query rows ``q0:q1``, in descriptor
    order (then posting order).

    Returns the group ``entry * 2 + hand`` of each vote and its payload
    ``descriptor << 16 | rotation << 8 | h`` (rotation in 1/256 turn, h the Hamming distance).
    """
    cap = 1024
    g = np.empty(cap, np.int64)
    pay = np.empty(cap, np.int64)
    n = 0
    for q in range(q0, q1):
        w = q_words[q]
        p0 = offsets[w]
        p1 = offsets[w + 1]
        if n + (p1 - p0) > cap:                    # room for every posting of the list
            while n + (p1 - p0) > cap:
                cap *= 2
            g2 = np.empty(cap, np.int64)
            pay2 = np.empty(cap, np.int64)
            g2[:n] = g[:n]
            pay2[:n] = pay[:n]
            g, pay = g2, pay2
        qc = np.uint64(q_codes[q])
        qa = np.int64(q_angles[q])
        hand = np.int64(q_hands[q])
        qbits = np.int64(q) << 16
        for p in range(p0, p1):                    # branch-free: write always, keep when close
            h = _popcount(np.uint64(codes[p]) ^ qc)
            g[n] = np.int64(ids[p]) * 2 + hand
            pay[n] = qbits | (((np.int64(angles[p]) - qa) & 255) << 8) | h
            n += np.int64(h <= max_h)
    return g[:n], pay[:n]


@njit(cache=True)
def _sort_groups(g, pay):
    """``g`` and ``pay`` sorted by ``g``, stably (LSD radix sort on ``g - min(g)``)."""
    n = g.shape[0]
    if n == 0:
        return g.copy(), pay.copy()
    gmin = g.min()
    span = g.max() - gmin
    bits = 0
    while bits < 63 and (span >> bits) > 0:
        bits += 1
    passes = max(1, (bits + 10) // 11)
    r = max(1, (bits + passes - 1) // passes)
    mask = (np.int64(1) << r) - 1
    k = g - gmin
    v = pay.copy()
    k2 = np.empty(n, np.int64)
    v2 = np.empty(n, np.int64)
    cnt = np.empty(mask + 2, np.int64)
    shift = 0
    while shift < bits:
        cnt[:] = 0
        for i in range(n):
            cnt[((k[i] >> shift) & mask) + 1] += 1
        for d in range(mask + 1):
            cnt[d + 1] += cnt[d]
        for i in range(n):
            d = (k[i] >> shift) & mask
            j = cnt[d]
            k2[j] = k[i]
            v2[j] = v[i]
            cnt[d] = j + 1
        k, k2 = k2, k
        v, v2 = v2, v
        shift += r
    return k + gmin, v


@njit(cache=True)
def _entry_scores(g, pay, weights, nb):
    """Best key total of every voted entry, entries ascending: (entry ids, scores).

    ``g``, ``pay`` sorted by group, descriptors ascending within a group.
    """
    n = g.shape[0]
    ent = np.empty(n, np.int64)
    best = np.empty(n, np.float64)
    ne = 0
    tot = np.zeros(2 * nb, np.float64)            # one (entry, hand) group's key totals
    cur = np.zeros(2 * nb, np.float64)            # one descriptor's best weight per bin
    seen = np.zeros(2 * nb, np.bool_)
    touched = np.empty(2 * nb, np.int64)
    i = 0
    while i < n:
        gk = g[i]
        j = i
        while j < n and g[j] == gk:
            j += 1
        # group [i, j): votes of one (entry, hand), descriptors ascending
        k = i
        while k < j:
            q = pay[k] >> 16
            nt = 0
            m = k
            while m < j and (pay[m] >> 16) == q:
                wt = np.float64(weights[pay[m] & 255])
                r = (pay[m] >> 8) & 255
                b1 = (r * nb) // 256
                b2 = ((r * nb + 128) // 256) % nb + nb
                for b in (b1, b2):
                    if not seen[b]:
                        seen[b] = True
                        cur[b] = wt
                        touched[nt] = b
                        nt += 1
                    elif wt > cur[b]:
                        cur[b] = wt
                m += 1
            for t in range(nt):                    # key totals in descriptor order
                b = touched[t]
                tot[b] += cur[b]
                seen[b] = False
            k = m
        gbest = tot[0]
        for b in range(2 * nb):
            if tot[b] > gbest:
                gbest = tot[b]
            tot[b] = 0.0
        e = gk // 2                                # floor division: entry id of the group
        if ne > 0 and ent[ne - 1] == e:
            if gbest > best[ne - 1]:
                best[ne - 1] = gbest
        else:
            ent[ne] = e
            best[ne] = gbest
            ne += 1
        i = j
    return ent[:ne], best[:ne]


@njit(inline="always")
def _worse(s1, i1, s2, i2):
    """Whether entry ``i1`` with score ``s1`` ranks after ``i2`` with ``s2`` (ties by id)."""
    return s1 < s2 or (s1 == s2 and i1 > i2)


@njit(cache=True)
def _sift_down(hs, hi, n, j):
    """Restore the heap (worst entry at the root) below position ``j``."""
    while True:
        c = 2 * j + 1
        if c >= n:
            return
        if c + 1 < n and _worse(hs[c + 1], hi[c + 1], hs[c], hi[c]):
            c += 1
        if not _worse(hs[c], hi[c], hs[j], hi[j]):
            return
        hs[j], hs[c] = hs[c], hs[j]
        hi[j], hi[c] = hi[c], hi[j]
        j = c


@njit(cache=True)
def _top(ent, best, exclude, depth):
    """The ``depth`` best entries not in ``exclude`` (sorted), best first, ties by id.

    A heap of the ``depth`` best so far (the worst of them at the root).
    """
    k = min(depth, ent.shape[0])
    hs = np.empty(k, np.float64)
    hi = np.empty(k, np.int64)
    n = 0
    x = 0
    for i in range(ent.shape[0]):                  # ent and exclude both ascending: a merge
        e = ent[i]
        while x < exclude.shape[0] and exclude[x] < e:
            x += 1
        if x < exclude.shape[0] and exclude[x] == e:
            continue
        if n < k:                                  # sift up
            j = n
            hs[j] = best[i]
            hi[j] = e
            n += 1
            while j > 0:
                parent = (j - 1) // 2
                if not _worse(hs[j], hi[j], hs[parent], hi[parent]):
                    break
                hs[j], hs[parent] = hs[parent], hs[j]
                hi[j], hi[parent] = hi[parent], hi[j]
                j = parent
        elif k > 0 and _worse(hs[0], hi[0], best[i], e):
            hs[0] = best[i]
            hi[0] = e
            _sift_down(hs, hi, n, 0)
    out_s = np.empty(n, np.float64)
    out_i = np.empty(n, np.int64)
    for t in range(n - 1, -1, -1):                 # pop the worst into the last free place
        out_s[t] = hs[0]
        out_i[t] = hi[0]
        m = t
        hs[0] = hs[m]
        hi[0] = hi[m]
        _sift_down(hs, hi, m, 0)
    return out_s, out_i


@njit(cache=True, nogil=True)
def _finish(g, pay, weights, nb, exclude, depth):
    g, pay = _sort_groups(g, pay)
    ent, best = _entry_scores(g, pay, weights, nb)
    return _top(ent, best, exclude, depth)


@njit(cache=True, nogil=True)
def _local_votes(offsets, ids, codes, angles, q_words, q_codes, q_angles, q_hands, weights, nb, exclude, depth):
    g, pay = _gather(offsets, ids, codes, angles, q_words, q_codes, q_angles, q_hands, weights.shape[0] - 1,
                     0, q_words.shape[0])
    return _finish(g, pay, weights, nb, exclude, depth)


def _split_rows(offsets: np.ndarray, q_words: np.ndarray, parts: int) -> list[tuple[int, int]]:
    """Contiguous ranges of query rows with about equal numbers of postings to scan."""
    work = np.concatenate([[0], np.cumsum(offsets[q_words + 1] - offsets[q_words])])   # postings before row i
    cuts = [0]
    for k in range(1, parts):
        target = work[-1] * k / parts
        i = int(np.searchsorted(work, target))          # first prefix >= target; the one before may be closer
        if i > 0 and target - work[i - 1] < work[min(i, len(work) - 1)] - target:
            i -= 1
        cuts.append(min(max(i, cuts[-1]), len(q_words)))
    cuts.append(len(q_words))
    return [(a, b) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]


def _gather_threads(offsets, ids, codes, angles, q_words, q_codes, q_angles, q_hands, max_h, threads):
    """The votes of :func:`_gather` with the rows split over ``threads`` threads (same order)."""
    from concurrent.futures import ThreadPoolExecutor

    ranges = _split_rows(offsets, q_words, threads)
    with ThreadPoolExecutor(max_workers=len(ranges), thread_name_prefix="ballistics-votes") as pool:
        parts = list(pool.map(lambda r: _gather(offsets, ids, codes, angles, q_words, q_codes, q_angles, q_hands,
                                                max_h, r[0], r[1]), ranges))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _vector(name: str, a: np.ndarray, dtypes: tuple[type, ...], n: int | None = None) -> np.ndarray:
    if not isinstance(a, np.ndarray) or a.ndim != 1 or a.dtype.type not in dtypes:
        raise ValueError(f"{name} must be a 1-D numpy array of dtype {' or '.join(np.dtype(d).name for d in dtypes)}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")
    if n is not None and len(a) != n:
        raise ValueError(f"{name} must have length {n}, not {len(a)}")
    return a


def local_votes(offsets: np.ndarray, ids: np.ndarray, codes: np.ndarray, angles: np.ndarray,
                q_words: np.ndarray, q_codes: np.ndarray, q_angles: np.ndarray, q_hands: np.ndarray,
                weights: np.ndarray, rotation_bins: int, depth: int,
                exclude: np.ndarray | None = None, threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Best ``depth`` entries of an inverted file for a set of query descriptors.

    Parameters
    ----------
    offsets : numpy.ndarray, shape (n_words + 1,), int64
        Word ``w``'s postings are ``offsets[w]:offsets[w + 1]`` (ascending, from 0 to the
        number of postings).
    ids, codes, angles : numpy.ndarray, shape (n_postings,)
        Entry id (int32 or int64), Hamming code (uint32) and orientation in
        1/256 of a turn (uint8) of every posting.
    q_words, q_codes, q_angles, q_hands : numpy.ndarray, shape (n_queries,)
        One row per (query key point, assigned word): the word (int64), the key point's
        code for that word (uint32), its orientation (uint8) and its handedness (uint8,
        0 as given, 1 mirrored).
    weights : numpy.ndarray, shape (max_hamming + 1,), float32
        Vote weight by Hamming distance; a posting votes when its distance to the query
        code is below ``len(weights)`` (at most 33 entries; none: nothing votes).
    rotation_bins : int
        Bins of a grid (the second grid is offset by half a bin).
    depth : int
        Entries returned at most.
    exclude : numpy.ndarray of int, optional
        Entry ids never returned.
    threads : int, default 1
        Threads scanning the postings (the query rows split into contiguous ranges of
        about equal work; the votes are concatenated in row order, so the result does
        not depend on it).  Sorting and summing the votes stay on one thread, and a
        query with fewer than :data:`MIN_SPLIT` postings to scan is scanned on one.

    Returns
    -------
    scores : numpy.ndarray, shape (n,), float64
        Best key total of each returned entry, best first (``n <= depth``: only entries
        with a vote are returned).
    ids : numpy.ndarray, shape (n,), int64
        Their entry ids; equal scores are ordered by ascending id.
    """
    offsets = _vector("offsets", offsets, (np.int64,))
    ids = _vector("ids", ids, (np.int32, np.int64))
    codes = _vector("codes", codes, (np.uint32,), len(ids))
    angles = _vector("angles", angles, (np.uint8,), len(ids))
    q_words = _vector("q_words", q_words, (np.int64,))
    nq = len(q_words)
    q_codes = _vector("q_codes", q_codes, (np.uint32,), nq)
    q_angles = _vector("q_angles", q_angles, (np.uint8,), nq)
    q_hands = _vector("q_hands", q_hands, (np.uint8,), nq)
    weights = _vector("weights", weights, (np.float32,))
    if len(weights) > 33:
        raise ValueError("weights must have at most 33 entries (Hamming distances 0 ... 32)")
    if len(offsets) < 2 or offsets[0] != 0 or offsets[-1] != len(ids) or np.any(np.diff(offsets) < 0):
        raise ValueError("offsets must ascend from 0 to the number of postings")
    if nq and (q_words.min() < 0 or q_words.max() >= len(offsets) - 1):
        raise ValueError("q_words names a word outside the inverted file")
    if nq and q_hands.max() > 1:
        raise ValueError("q_hands must be 0 (as given) or 1 (mirrored)")
    if nq >= 2**31:
        raise ValueError("too many query rows (at most 2**31 - 1)")
    if int(rotation_bins) < 1 or int(depth) < 0:
        raise ValueError("rotation_bins must be positive and depth not negative")
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    ex = np.unique(np.asarray([] if exclude is None else exclude, np.int64).ravel())
    if threads == 1 or nq < 2 or int((offsets[q_words + 1] - offsets[q_words]).sum()) < MIN_SPLIT:
        return _local_votes(offsets, ids, codes, angles, q_words, q_codes, q_angles, q_hands, weights,
                            int(rotation_bins), ex, int(depth))
    g, pay = _gather_threads(offsets, ids, codes, angles, q_words, q_codes, q_angles, q_hands,
                             len(weights) - 1, int(threads))
    return _finish(g, pay, weights, int(rotation_bins), ex, int(depth))
