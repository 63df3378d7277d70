"""Reference scores: known same-firearm and different-firearm pairs to place a score among.

A similarity score means little on its own; what an examiner can report is where it
falls among scores of pairs whose ground truth is known, computed with the same method
and parameters.  This module answers three questions, each as a table a person can
inspect:

* which reference pairs -- :func:`pair_scores` compares every pair of a set of scans
  with known firearms (``metadata["firearm"]``) and returns one :class:`ReferencePair`
  per pair;
* their scores -- :func:`reference_scores` does so for a named set (the 6 bundled Fadul
  breech faces, or the 40 Fadul scans of ``../shared/data``) or your own scans, caches
  the result and returns a :class:`ReferenceScores` (``.rows()``, ``.to_csv()``);
* where a score falls among them -- :func:`placement` counts the reference scores at or
  above it (:class:`Placement`); no model, no extrapolation.
  :meth:`ReferenceScores.leave_out` drops the pair being reported, so a case is never
  placed among scores that include itself.

>>> from ballistics.review.reference import placement
>>> p = placement(12, same=[20, 15, 9], different=[0, 1, 2, 13])
>>> p.same_at_or_above, p.different_at_or_above, p.max_different
(2, 1, 13.0)

References
----------
Fadul, T. G., Hernandez, G. A., Stoiloff, S., Gulati, S. (2011). An empirical study to
improve the scientific foundation of forensic firearm and tool mark identification
utilizing 10 consecutively manufactured slides. NIJ report 237960.
Song, J. (2013). Proposed "NIST Ballistics Identification System (NBIS)" based on 3D
topography measurements on correlation cells. AFTE Journal 45(2), 184-194.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import json
import logging
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._json import jsonable as _jsonable
from .._version import __version__
from ..comparison import CompareParams
from ..errors import BallisticsError, ParameterError
from ..scan import Scan
from ._cells import comparison_dict
from ._reference_cache import cache_key, read_cached, write_cached

__all__ = ["ReferencePair", "ReferenceScores", "Placement", "pair_scores", "reference_scores", "placement"]

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ReferencePair:
    """One compared pair with known ground truth (a row of the reference table)."""

    a: str
    b: str
    a_checksum: str
    b_checksum: str
    same: bool                      #: same firearm (from the ground truth, not the score)
    score: float                    #: the comparison's score
    cmc_count: int                  #: congruent matching cells (-1 if the comparison gave none)
    rotation_deg: float | None = None
    method: str | None = None
    params: dict[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ReferencePair:
        """Rebuild from :func:`dataclasses.asdict` output (e.g. read back from JSON)."""
        names = {f.name for f in dataclasses.fields(cls)}
        try:
            return cls(**{k: v for k, v in d.items() if k in names})
        except TypeError as exc:
            raise BallisticsError(f"A reference pair needs a, b, a_checksum, b_checksum, same, score and "
                                  f"cmc_count: {exc}") from exc


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where a score falls among reference scores, in counts."""

    score: float
    n_same: int
    n_different: int
    same_at_or_above: int           #: same-firearm pairs scoring at least ``score``
    different_at_or_above: int      #: different-firearm pairs scoring at least ``score``
    max_different: float | None     #: highest different-firearm score (None if there is none)
    min_same: float | None          #: lowest same-firearm score (None if there is none)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the fields."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class ReferenceScores:
    """Scores of known same- and different-firearm pairs, with how they were computed.

    ``same`` and ``different`` are the CMC counts (the score reports place); ``pairs``
    holds every pair with its details (empty when the scores were given without them).
    """

    source: str
    same: tuple[float, ...]
    different: tuple[float, ...]
    pairs: tuple[ReferencePair, ...] = ()
    method: str | None = None                 #: the method asked for (None = compare's default)
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    library_version: str = __version__
    comparison_method: str | None = None      #: the method the comparisons report
    comparison_params: dict[str, Any] = dataclasses.field(default_factory=dict)
    elapsed_s: float = 0.0

    @classmethod
    def from_pairs(cls, pairs: Sequence[ReferencePair], source: str, **kw: Any) -> ReferenceScores:
        """Build from pair rows; ``same``/``different`` are their CMC counts."""
        pairs = tuple(pairs)
        shared = ({k: v for k, v in pairs[0].params.items() if all(p.params.get(k) == v for p in pairs)}
                  if pairs else {})
        kw.setdefault("comparison_method", pairs[0].method if pairs else None)
        kw.setdefault("comparison_params", shared)
        return cls(source=source, same=tuple(p.cmc_count for p in pairs if p.same),
                   different=tuple(p.cmc_count for p in pairs if not p.same), pairs=pairs, **kw)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ReferenceScores:
        """From :meth:`to_dict` output, or a plain dict with ``same``, ``different``, ``source``."""
        if "same" not in d or "different" not in d:
            raise BallisticsError("Reference scores need 'same' and 'different' lists of scores.")
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        kw["same"] = tuple(float(x) for x in d["same"])
        kw["different"] = tuple(float(x) for x in d["different"])
        kw["pairs"] = tuple(ReferencePair.from_dict(p) for p in d.get("pairs") or ())
        kw.setdefault("source", "reference pairs")
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the layout of the cache file)."""
        d = dataclasses.asdict(self)
        d["same"], d["different"] = list(self.same), list(self.different)
        d["pairs"] = [dataclasses.asdict(p) for p in self.pairs]
        return _jsonable(d)

    def rows(self) -> list[dict[str, Any]]:
        """The pairs as a table: one dict per pair (``a``, ``b``, ``same``, ``score``, ...)."""
        return [{k: v for k, v in dataclasses.asdict(p).items() if k != "params"} for p in self.pairs]

    def to_csv(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`rows` as a CSV file (one line per pair)."""
        from .._io import atomic_write_bytes

        fields = [f.name for f in dataclasses.fields(ReferencePair) if f.name != "params"]
        buf = io.StringIO(newline="")
        w = csv.DictWriter(buf, fieldnames=fields)
        w.writeheader()
        w.writerows(self.rows())
        try:
            atomic_write_bytes(path, buf.getvalue().encode("utf-8"))
        except OSError as exc:
            raise BallisticsError(f"Cannot write the reference table to {path}: {exc}") from exc

    def leave_out(self, a: Scan, b: Scan) -> tuple[ReferenceScores, int]:
        """These scores without the pair ``{a, b}`` (no circular placement).

        Returns
        -------
        (ReferenceScores, int)
            The remaining scores and how many pairs were left out (0 when the scores
            came without their pairs and nothing can be left out).
        """
        if not self.pairs:
            return self, 0
        ids = {a.checksum, b.checksum}
        keep = [p for p in self.pairs if {p.a_checksum, p.b_checksum} != ids]
        n = len(self.pairs) - len(keep)
        if n == 0:
            return self, 0
        kw = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
              if f.name not in ("same", "different", "pairs")}
        kw["source"] = f"{self.source} (leaving out this pair)"
        return ReferenceScores.from_pairs(keep, **kw), n

    def place(self, score: float) -> Placement:
        """Where ``score`` falls among these scores (see :func:`placement`)."""
        return placement(score, self.same, self.different)


def placement(score: float, same: Iterable[float], different: Iterable[float]) -> Placement:
    """Where a score falls among reference scores, in counts (no model, no extrapolation).

    Parameters
    ----------
    score : float
        The case's score.
    same, different : iterable of float
        Scores of known same-firearm and different-firearm pairs (same scale).

    Returns
    -------
    Placement

    Examples
    --------
    >>> placement(5, [3, 5, 9], [0, 1, 5, 6, 2]).to_dict()        # doctest: +NORMALIZE_WHITESPACE
    {'score': 5.0, 'n_same': 3, 'n_different': 5, 'same_at_or_above': 2,
     'different_at_or_above': 2, 'max_different': 6.0, 'min_same': 3.0}
    """
    s = np.asarray(list(same), float)
    d = np.asarray(list(different), float)
    if not np.isfinite(score):
        raise BallisticsError(f"The score to place must be a finite number, got {score}.")
    if not (np.all(np.isfinite(s)) and np.all(np.isfinite(d))):
        raise BallisticsError("Reference scores hold NaN or infinite values; drop them first.")
    return Placement(score=float(score), n_same=int(s.size), n_different=int(d.size),
                     same_at_or_above=int((s >= score).sum()), different_at_or_above=int((d >= score).sum()),
                     max_different=float(d.max()) if d.size else None,
                     min_same=float(s.min()) if s.size else None)


#: Instrument family of the named reference sources.
SOURCE_FAMILY = {"bundled": "confocal", "fadul40": "confocal"}


def _check_params(params: Any) -> None:
    if params is not None and not isinstance(params, CompareParams):
        raise ParameterError(f"params must be a CompareParams, got {type(params).__name__}")


def pair_scores(scans: Sequence[Scan], *, method: str | None = None, params: CompareParams | None = None,
                truth_key: str = "firearm", progress: bool = False) -> list[ReferencePair]:
    """Compare every pair of scans and label it same-firearm or different-firearm.

    Parameters
    ----------
    scans : sequence of Scan
        Processed breech faces with the ground truth in ``metadata[truth_key]``.
    method : str, optional
        Comparison method given to :func:`ballistics.compare` (default: its default,
        ``"convergence"``).
    params : CompareParams, optional
        Comparison parameters (default: the default preset); must be the case's.
    truth_key : str
        Metadata key naming the firearm.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    list of ReferencePair
        One per pair, in the order of :func:`itertools.combinations`.
    """
    from ..comparison import compare

    _check_params(params)
    scans = list(scans)
    if len(scans) < 2:
        raise BallisticsError(f"Reference scores need at least two scans, got {len(scans)}.")
    for s in scans:
        if not isinstance(s, Scan):
            raise BallisticsError(f"Reference scans must be ballistics.Scan objects, got {type(s).__name__}.")
        if truth_key not in s.metadata:
            raise BallisticsError(f"Scan {s.name!r} has no ground truth metadata[{truth_key!r}]; "
                                  "reference scores need known same/different-firearm pairs.")
    pairs = list(itertools.combinations(range(len(scans)), 2))
    it: Iterable[tuple[int, int]] = pairs
    if progress:
        from tqdm import tqdm
        it = tqdm(pairs, desc="reference pairs", unit="pair")
    kw: dict[str, Any] = {"preset": params if params is not None else "default", "lr_system": None}
    if method is not None:
        kw["method"] = method
    out = []
    for i, j in it:
        a, b = scans[i], scans[j]
        d = comparison_dict(compare(a, b, **kw))
        cmc = d.get("cmc_count")
        score = d.get("score", cmc)
        out.append(ReferencePair(
            a=a.name, b=b.name, a_checksum=a.checksum, b_checksum=b.checksum,
            same=a.metadata[truth_key] == b.metadata[truth_key],
            score=float(score if score is not None else np.nan), cmc_count=int(cmc) if cmc is not None else -1,
            rotation_deg=d.get("rotation_deg"), method=d.get("method"), params=_jsonable(d.get("params") or {})))
    return out


def reference_scores(source: str | Sequence[Scan] = "bundled", *, method: str | None = None,
                     params: CompareParams | None = None, cache: bool = True,
                     progress: bool = False) -> ReferenceScores:
    """Scores of known same-firearm and different-firearm pairs, to place a case score.

    Parameters
    ----------
    source : "bundled", "fadul40", or sequence of Scan
        ``"bundled"``: all 15 pairs of the 6 bundled Fadul breech faces (3 same-firearm,
        12 different-firearm); ``"fadul40"``: all 780 pairs of the 40 Fadul scans in
        ``../shared/data`` (or ``$BALLISTICS_SHARED_DATA``; slow, cached); or your own
        scans with ``metadata["firearm"]`` set.
    method : str, optional
        Comparison method (default: the default of :func:`ballistics.compare`,
        ``"convergence"``); must be the one used for the case comparison.
    params : CompareParams, optional
        Comparison parameters (default: the default preset); must match the case's.
    cache : bool
        Keep the scores in ``$BALLISTICS_CACHE`` (default ``~/.cache/openbreech``), keyed
        by library version, comparison code, method, parameters and the scans' checksums.
    progress : bool
        Show a progress bar.

    Returns
    -------
    ReferenceScores
        ``same``/``different`` CMC counts, ``pairs`` (``rows()`` as a table), ``source``.
    """
    scans, desc = _reference_scans(source)
    _check_params(params)
    pdict = params.to_dict() if params is not None else {}
    key = cache_key(method, pdict, [s.checksum for s in scans])
    if cache:
        cached = read_cached(key)
        if cached is not None:
            try:
                return ReferenceScores.from_dict(cached)
            except (BallisticsError, TypeError, ValueError) as exc:
                log.warning("ignoring a reference cache entry of another layout: %s", exc)
    t0 = time.perf_counter()
    pairs = pair_scores(scans, method=method, params=params, progress=progress)
    out = ReferenceScores.from_pairs(pairs, desc, method=method, params=_jsonable(pdict),
                                     elapsed_s=round(time.perf_counter() - t0, 2))
    if cache:
        write_cached(key, json.dumps(out.to_dict()).encode("utf-8"))
    return out


def _reference_scans(source: str | Sequence[Scan]) -> tuple[list[Scan], str]:
    if isinstance(source, str):
        if source == "bundled":
            from ..datasets import fadul
            return fadul("processed"), "the 15 pairs of the 6 bundled Fadul breech faces (Ruger P95 slides 1-3)"
        if source == "fadul40":
            scans = _fadul40()
            n = len(scans)
            return scans, f"all {n * (n - 1) // 2} pairs of the {n} Fadul breech faces (10 Ruger P95 slides)"
        raise BallisticsError(f"Unknown reference source {source!r}; use 'bundled', 'fadul40' "
                              "or a list of scans with metadata['firearm'].")
    scans = list(source)
    return scans, f"the {len(scans) * (len(scans) - 1) // 2} pairs of {len(scans)} given scans"


def _fadul40() -> list[Scan]:
    from ..reading import read_scan

    default = Path(__file__).resolve().parents[3] / "shared" / "data"
    root = Path(os.environ.get("BALLISTICS_SHARED_DATA", default))
    gt = root / "fadul" / "ground_truth.csv"
    if not gt.exists():
        raise BallisticsError(f"The 40-scan Fadul set is not at {root} (set BALLISTICS_SHARED_DATA).")
    scans = []
    with gt.open() as fh:
        for row in csv.DictReader(fh):
            s = read_scan(root / "fadul" / row["file"], exhibit_id=Path(row["file"]).stem)
            s.metadata["firearm"] = row["firearm"]
            scans.append(s)
    return scans
