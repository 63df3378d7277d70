"""Searching a case database together with partner bundles, or several bundles, as one collection.

Every source is searched with one stage-1 model: the database's (or ``model`` when
there is no database).  Each bundle is validated and opened as a temporary read-only
database of that model (:func:`~._bundle_import.open_bundle`; its ``local-sift`` data
are computed from the bundle's key points), so a bundle whose global signatures are of
another version is refused (:class:`~ballistics.errors.BundleModelError`).

How the union is ranked:

1. stage 1 runs in each source, each keeping its own short list of ``shortlist``
   candidates (a small bundle is not crowded out by a large database);
2. stage 2 verifies every short-listed candidate of every source; its inlier count
   depends only on the query and the candidate, so the verified candidates of all
   sources are merged into one list and ordered as the cascade orders them;
3. stage 3 compares the best ``rerank`` candidates of the merged list (the same gate
   of ``rerank_min_inliers``), and the final order is the cascade's (compared first by
   CMC count and score, then by inliers, then by the stage-1 score).  Stage 3 needs
   the candidate's surface: a candidate from a bundle exported without surfaces is not
   compared (a warning names it) and, as every uncompared candidate, ranks after the
   compared ones; exchange bundles ``--with-surfaces``, or search with ``rerank=0``, to
   rank every source alike.

A scan held by several sources (same height-array hash) is listed once, from the first
source that holds it (the database, then the bundles in the order given).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, fields
from typing import Any

from .._threads import threads
from ..errors import BundleModelError, BundleSignatureError, DatabaseError
from ..retrieval import SearchHit, SearchParams, SearchResult
from ..retrieval._cascade import UNVERIFIED_PREFIX, CascadeHit, compare_candidates, unverified_warning
from ..retrieval._models import DEFAULT_MODEL, get_model
from ..retrieval._timing import Timer
from ..scan import Scan
from ._entry import PreparedEntry, prepare_entry

__all__ = ["SourcedHit", "MultiSearch", "search_sources"]

logger = logging.getLogger(__name__)


@dataclass
class SourcedHit(SearchHit):
    """A :class:`~ballistics.retrieval.SearchHit` of a search over several sources.

    Attributes
    ----------
    lab : str
        The lab the scan comes from: the bundle's lab, the lab an imported entry came
        from, or the database's own lab name for its own scans.
    source : str
        Where the hit was found: ``"database:<path>"`` or ``"bundle:<path>"``.
    retrieval_rank : int
        Rank in its own source's stage-1 short list.
    """

    source: str = ""


@dataclass
class _Source:
    name: str
    db: Any
    lab: str | None
    owned: bool


class MultiSearch:
    """A case database and partner bundles (or bundles alone) searched as one collection.

    Parameters
    ----------
    database : CaseDatabase, path-like or None
        The lab's database (opened read-only when a path is given), or None to search
        bundles only.
    bundles : sequence of path-like
        Exchange bundles, searched without importing them.
    public_keys : sequence of (path, bytes or Ed25519PublicKey), optional
        A keyring: each signed bundle must verify with one of these keys.  When keys are
        given, an unsigned bundle is refused unless ``trust_unsigned``.
    trust_unsigned : bool, default False
        Search a signed bundle without checking its signature when no key is given, and
        an unsigned bundle when keys are given (each with a warning in the results).
    lab : str, default "local"
        Name shown as the lab of the database's own scans.
    model : str, optional
        Stage-1 model when there is no database (default: the model of new databases); with a
        database its own model is used and ``model``, if given, must equal it.
    compare, prepare : callable, optional
        Stage-3 comparison functions (default: the database's, else
        :func:`ballistics.comparison.compare` / ``prepare``).

    Raises
    ------
    BundleError
        A missing, damaged or hostile bundle, a bad or missing signature, or global
        signatures of another version (:class:`BundleModelError`); everything opened so
        far is closed again.
    DatabaseError
        ``database`` is not a database, or no source was given.

    Examples
    --------
    >>> with MultiSearch("lab-db", ["lab-a.zip", "lab-b.zip"], trust_unsigned=True) as ms:  # doctest: +SKIP
    ...     for h in ms.search("query.x3p", k=5):
    ...         print(h.rank, h.lab, h.source, h.scan_id)
    """

    def __init__(self, database: Any = None, bundles: Sequence[str | os.PathLike[str]] = (), *,
                 public_keys: Sequence[Any] = (), trust_unsigned: bool = False, lab: str = "local",
                 model: str | None = None, compare: Callable[..., Any] | None = None,
                 prepare: Callable[[Scan], Any] | None = None) -> None:
        from ._bundle_format import check_lab
        from ._database import CaseDatabase

        self.lab = check_lab(lab)
        self.sources: list[_Source] = []
        self._extractors: dict[str, Callable[[Scan], Scan]] | None = None
        self.warnings: list[str] = []
        if database is None and not bundles:
            raise DatabaseError("nothing to search: give a database, one or more bundles, or both.")
        try:
            if database is not None:
                own = not isinstance(database, CaseDatabase)
                db = CaseDatabase(database, create=False, readonly=True) if own else database
                self.sources.append(_Source(f"database:{db.path}", db, self.lab, own))
                if model is not None and get_model(model).name != db.model:
                    raise BundleModelError(f"{db.path} searches with signature model {db.model!r}, not {model!r}; "
                                           "every source of one search uses the database's model.")
                model = db.model
                compare = compare or db._compare
                prepare = prepare or db._prepare
                self._extractors = db._extractors
            self.model = get_model(model or DEFAULT_MODEL).name
            for path in bundles:
                self.sources.append(self._open(path, list(public_keys), trust_unsigned))
        except BaseException:
            self.close()
            raise
        self._compare, self._prepare = compare, prepare

    def _open(self, path: str | os.PathLike[str], keys: list[Any], trust_unsigned: bool) -> _Source:
        from ._bundle_import import open_bundle
        from ._bundle_read import signing_key_for

        key, signed = signing_key_for(path, keys)
        if key is None and signed and keys:
            raise BundleSignatureError(f"{path}: the bundle's signature does not verify with any of the "
                                       f"{len(keys)} public key(s) given (another lab's key, or the bundle was "
                                       "altered); add the exporting lab's key (--public-key).")
        if key is None and not signed and keys and not trust_unsigned:
            raise BundleSignatureError(f"{path}: the bundle is not signed, but public keys were given to check "
                                       "bundles; pass trust_unsigned=True (--trust-unsigned) to search it unchecked.")
        if key is None and signed and not trust_unsigned:
            raise BundleSignatureError(f"{path}: the bundle is signed, but no public key was given to check the "
                                       "signature; pass the exporting lab's public key (--public-key), or "
                                       "trust_unsigned=True (--trust-unsigned) to search it unchecked.")
        if key is None:
            self.warnings.append(f"bundle:{path}: searched without checking a signature ("
                                 + ("signed, but trusted unchecked" if signed else "the bundle is unsigned") + ")")
        try:
            db = open_bundle(path, public_key=key, trust_unsigned=trust_unsigned or key is None, model=self.model)
        except BundleModelError as exc:
            raise BundleModelError(f"{exc} A bundle searched without importing it cannot be re-signed: import "
                                   "it with --resign, or ask the lab for a bundle of this version.") from exc
        labs = {r["lab"] for r in db.list()}
        return _Source(f"bundle:{path}", db, next(iter(labs)) if len(labs) == 1 else None, True)

    def close(self) -> None:
        """Close every source this object opened (temporary bundle databases are removed)."""
        for s in self.sources:
            if s.owned:
                s.db.close()
        self.sources = []

    def __enter__(self) -> MultiSearch:
        return self

    def __exit__(self, *a: Any) -> None:
        self.close()

    def search(self, scan: Scan | str | os.PathLike[str] | PreparedEntry, k: int | None = None, *,
               params: SearchParams | None = None, preprocess: bool = True, exclude_self: bool = True,
               **knobs: Any) -> SearchResult:
        """Ranked hits over the union of the sources; each hit names its lab and source.

        Parameters
        ----------
        scan : Scan, path or PreparedEntry
            The query (whole primer if ``preprocess``, else an extracted breech face).
        k : int, optional
            Length of the returned list (default ``params.k``).
        params : SearchParams, optional
            Every knob of the cascade; ``shortlist`` is per source, ``rerank`` over the union.
        preprocess : bool, default True
            Extract surfaces first.
        exclude_self : bool, default True
            Leave out stored scans identical to the query.
        **knobs
            Overrides of ``params`` fields.

        Returns
        -------
        SearchResult
            Hits (:class:`SourcedHit`) best first, summed per-stage timings, warnings
            (each prefixed by its source).
        """
        p = params if params is not None else SearchParams()
        if k is not None:
            knobs["k"] = k
        knobs = {n: v for n, v in knobs.items() if v is not None}
        p = p.replace(**knobs) if knobs else p
        if not self.sources:
            raise DatabaseError("this MultiSearch was closed.")
        timings: dict[str, dict[str, float]] = {}
        with Timer(timings, "query", 1):
            entry = scan if isinstance(scan, PreparedEntry) else prepare_entry(scan, preprocess,
                                                                                       self._extractors)
        per_source = p.replace(rerank=0, k=p.shortlist)
        warnings = list(self.warnings)
        merged: list[CascadeHit] = []
        found: dict[Hashable, tuple[SearchHit, _Source]] = {}
        seen: dict[str, str] = {}
        surfaced: set[Hashable] = set()
        for i, src in enumerate(self.sources):
            r = src.db.search(entry, params=per_source, exclude_self=exclude_self)
            for stage, t in r.timings.items():
                if stage not in ("query", "stage3"):
                    acc = timings.setdefault(stage, {})
                    for name, v in t.items():
                        acc[name] = acc.get(name, 0.0) + v
            warnings += [f"{src.name}: {w}" for w in r.warnings if not w.startswith(UNVERIFIED_PREFIX)]
            for h in r:
                row = src.db.catalogue.scan_by_id(h.scan_id)
                sha = None if row is None else row["sha256"]
                if sha is not None and sha in seen:
                    warnings.append(f"{src.name}: {h.scan_id} is the same scan as {seen[sha]}; listed once")
                    continue
                if sha is not None:
                    seen[sha] = f"{h.scan_id} ({src.name})"
                key = (i, h.scan_id)
                found[key] = (h, src)
                if row is not None and "breech_face" in src.db.catalogue.files_of(row["num"]):
                    surfaced.add(key)
                merged.append(CascadeHit(key=key, stage=h.stage, stage1_score=h.retrieval_score,
                                         stage1_rank=h.retrieval_rank, stage2_inliers=h.inliers,
                                         stage2=h.verification))
        merged.sort(key=lambda c: c.sort_key())
        weak = unverified_warning(merged, p.rerank_min_inliers) if p.verify else None
        if weak:  # said once, of the merged list (a source without the mate has nothing verified)
            warnings.append(weak)
        head = [c for c in merged[: p.rerank]
                if c.stage2_inliers is None or c.stage2_inliers >= p.rerank_min_inliers]
        for c in [c for c in head if c.key not in surfaced]:
            warnings.append(f"{found[c.key][1].name}: {found[c.key][0].scan_id}: no surface to compare (a bundle "
                            "exported without --with-surfaces); left at its stage-2 place")
            head.remove(c)
        with Timer(timings, "stage3", len(head)):
            if head:
                from ._search import stage3_functions

                cmp, prep = stage3_functions(self._compare, self._prepare)
                q = entry.surfaces["breech_face"]
                with threads(1):   # as each comparison: one thread (compare_candidates)
                    qp = prep(q) if prep is not None else q

                def load(lkey: Hashable) -> Scan:
                    lh, lsrc = found[lkey]
                    return lsrc.db.load_scan(lh.scan_id, "breech_face")

                bad = set(compare_candidates(qp, head, load, cmp, seed=p.seed, seed_window_deg=p.seed_window_deg,
                                             seed_min_inliers=p.seed_min_inliers, compare_params=p.compare,
                                             method=p.method))
                for bkey in bad:
                    bh, bsrc = found[bkey]
                    warnings.append(f"{bsrc.name}: {bh.scan_id}: stored breech face is damaged; skipped")
                merged = [c for c in merged if c.key not in bad]
                merged.sort(key=lambda c: c.sort_key())
        hits = []
        base = {f.name for f in fields(SearchHit)}
        for rank, c in enumerate(merged[: p.k], 1):
            h, src = found[c.key]
            d = {n: getattr(h, n) for n in base}
            d.update(rank=rank, stage=c.stage, score=c.compare_score, cmc_count=c.cmc_count,
                     comparison=c.comparison, stage3=c.stage3, lab=h.lab or src.lab or self.lab)
            hits.append(SourcedHit(**d, source=src.name))
        logger.info("search over %d sources: %d hits", len(self.sources), len(hits))
        return SearchResult(hits=tuple(hits), timings=timings, params=p.to_dict(), warnings=tuple(warnings),
                            query_sha256=entry.scan.checksum)


def search_sources(scan: Scan | str | os.PathLike[str] | PreparedEntry, database: Any = None,
                   bundles: Sequence[str | os.PathLike[str]] = (), *, public_keys: Sequence[Any] = (),
                   trust_unsigned: bool = False, lab: str = "local", model: str | None = None,
                   k: int | None = None, **kw: Any) -> SearchResult:
    """Search a database and bundles (or bundles alone) once; see :class:`MultiSearch`.

    Parameters
    ----------
    scan : Scan, path or PreparedEntry
        The query.
    database : CaseDatabase, path-like or None
        The lab's database, or None.
    bundles : sequence of path-like
        Exchange bundles searched without importing them.
    public_keys, trust_unsigned, lab, model
        As for :class:`MultiSearch`.
    k : int, optional
        Length of the returned list.
    **kw
        Passed to :meth:`MultiSearch.search` (``params``, ``preprocess``, knobs).

    Returns
    -------
    SearchResult
        Hits (:class:`SourcedHit`), each naming its lab and source.
    """
    with MultiSearch(database, bundles, public_keys=public_keys, trust_unsigned=trust_unsigned, lab=lab,
                     model=model) as ms:
        return ms.search(scan, k, **kw)

