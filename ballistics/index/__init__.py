"""Cross-case search: signatures in FAISS, a case database, ranked candidate lists.

* :func:`signature` -- fixed-length rotation-invariant vector of an extracted surface
  (SIFT-VLAD + polar angular spectrum, OpenCV / NumPy);
* :class:`SignatureIndex` -- FAISS index of signatures (exact below 50 000 entries,
  IVF above; persistent, incremental adds and removals);
* :class:`CaseDatabase` -- a directory with an SQLite catalogue, the scans stored by
  content hash and the index; ``add`` / ``search`` / ``remove`` / ``stats``;
* :class:`SearchHit` -- one candidate of a search;
* exchange bundles -- :meth:`CaseDatabase.export_bundle` / :meth:`CaseDatabase.import_bundle`,
  :func:`open_bundle` (search a partner's bundle without importing it),
  :func:`generate_signing_key` (Ed25519), :class:`BundleError` and its subclasses.

>>> from ballistics import datasets                               # doctest: +SKIP
>>> from ballistics.index import CaseDatabase
>>> db = CaseDatabase("lab-db")                                    # doctest: +SKIP
>>> scans = datasets.fadul("processed")                           # doctest: +SKIP
>>> for s in scans[1:]:                                            # doctest: +SKIP
...     db.add(s, scan_id=s.exhibit_id, case_id="C-1", preprocess=False)
>>> db.search(scans[0], k=3, preprocess=False)[0].scan_id          # doctest: +SKIP
'Fadul 1-2'
"""

from __future__ import annotations

from ._bundle import (
                      BundleError,
                      BundleFormatError,
                      BundleIntegrityError,
                      BundleModelError,
                      BundleSignatureError,
                      BundleVersionError,
                      generate_signing_key,
                      open_bundle,
                      read_bundle,
)
from ._database import PART_WEIGHTS, PARTS, CaseDatabase, PreparedEntry, SearchHit, prepare_entry
from ._faiss_index import FLAT_LIMIT, SignatureIndex, choose_kind
from ._signature import PARAMS as SIGNATURE_PARAMS
from ._signature import SIGNATURE_VERSION, signature, signature_dim, train_codebook

__all__ = ["CaseDatabase", "SearchHit", "SignatureIndex", "signature", "signature_dim", "prepare_entry",
           "PreparedEntry", "SIGNATURE_VERSION", "SIGNATURE_PARAMS", "PARTS", "PART_WEIGHTS", "FLAT_LIMIT",
           "choose_kind", "train_codebook", "BundleError", "BundleFormatError", "BundleIntegrityError",
           "BundleModelError", "BundleSignatureError", "BundleVersionError", "generate_signing_key", "open_bundle",
           "read_bundle"]
