"""The case database: a lab's scans, their evidence files, an audit chain, and search.

* :class:`CaseDatabase` -- a directory with an SQLite catalogue, the scans and evidence
  files stored by content hash, the audit chain and its journal, and the search index;
  ``add`` / ``remove`` / ``search`` / ``search_many`` / ``list`` / ``stats`` /
  ``verify`` / ``rebuild_index`` / ``recover``; every change goes through
  :meth:`CaseDatabase.write` (one transaction);
* :func:`prepare_entry` / :class:`PreparedEntry` -- the expensive, lock-free half of
  ``add`` (run in worker processes by ``ballistics db add --jobs N``);
* exchange bundles -- :meth:`CaseDatabase.export_bundle` / :meth:`CaseDatabase.import_bundle`,
  :func:`read_bundle` (validate), :func:`open_bundle` (search a partner's bundle without
  importing it), :class:`MultiSearch` / :func:`search_sources` (a database and several
  bundles, or bundles alone, searched as one collection; each hit names its lab and
  source), :func:`generate_signing_key` (Ed25519);
* :func:`recover` -- rebuild a lost catalogue from the stored surfaces and the journal.

Search returns a :class:`~ballistics.retrieval.SearchResult` (hits, per-stage timings,
warnings); its knobs are a :class:`~ballistics.retrieval.SearchParams`.

>>> from ballistics import datasets                               # doctest: +SKIP
>>> from ballistics.database import CaseDatabase
>>> db = CaseDatabase("lab-db")                                    # doctest: +SKIP
>>> scans = datasets.fadul("processed")                           # doctest: +SKIP
>>> for s in scans[1:]:                                            # doctest: +SKIP
...     db.add(s, scan_id=s.exhibit_id, case_id="C-1", preprocess=False)
>>> db.search(scans[0], k=3, preprocess=False)[0].scan_id          # doctest: +SKIP
'Fadul 1-2'
"""

from __future__ import annotations

from ..errors import (
                      BundleError,
                      BundleFormatError,
                      BundleIntegrityError,
                      BundleModelError,
                      BundleSignatureError,
                      BundleVersionError,
)
from ..retrieval import SearchHit, SearchParams, SearchResult
from ._audit import AuditLog
from ._bundle_export import export_bundle
from ._bundle_format import Bundle, generate_signing_key
from ._bundle_import import import_bundle, open_bundle
from ._bundle_read import read_bundle
from ._bundle_search import MultiSearch, SourcedHit, search_sources
from ._catalogue import Catalogue
from ._database import CaseDatabase
from ._entry import PARTS, PreparedEntry, prepare_entry
from ._lock import WriterLock
from ._recover import recover
from ._search import PART_WEIGHTS
from ._search_index import SearchIndex
from ._store import EvidenceStore
from ._writes import NewScan, WriteBatch

__all__ = ["CaseDatabase", "PreparedEntry", "prepare_entry", "PARTS", "PART_WEIGHTS", "SearchHit", "SearchParams",
           "SearchResult", "Catalogue", "AuditLog", "EvidenceStore", "WriterLock", "SearchIndex", "NewScan",
           "WriteBatch", "Bundle", "read_bundle", "open_bundle", "export_bundle", "import_bundle",
           "generate_signing_key", "recover", "MultiSearch", "SourcedHit", "search_sources",
           "BundleError", "BundleFormatError", "BundleIntegrityError", "BundleModelError", "BundleSignatureError",
           "BundleVersionError"]
