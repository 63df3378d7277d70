"""Retrieval: signatures, their FAISS index, key-point verification and the search cascade.

Storage-free building blocks of cross-case search (the case database,
:mod:`ballistics.database`, binds them to its catalogue):

* :func:`signature` -- fixed-length rotation-invariant vector of an extracted surface
  (SIFT-VLAD + polar angular spectrum, OpenCV / NumPy), :func:`train_codebook`;
* :class:`SignatureIndex` -- FAISS index of signatures (exact below :data:`FLAT_LIMIT`
  entries, IVF above; persistent, incremental adds and removals);
* stage 2 -- :class:`Keypoints`, :func:`keypoints`, :func:`query_keypoints`,
  :func:`verify` (SIFT key points under one rigid motion, RANSAC), :func:`verify_many`
  (a whole short list, on threads) and the per-scan data stored at ingest
  (:func:`ingest_blobs`);
* stage 1 from two rankings -- :func:`merge_ranked` (global signatures and the key
  points' votes);
* the cascade -- :class:`SearchParams` (its knobs), :func:`cascade` /
  :func:`cascade_many` over any storage, :func:`stage3_seed`, and the result types
  :class:`SearchHit` and :class:`SearchResult`.
"""

from __future__ import annotations

from ._cascade import CASCADE_DEFAULTS, CascadeHit, CascadeResult, compare_candidates, stage3_seed, verify_candidates
from ._faiss_index import FLAT_LIMIT, SignatureIndex, choose_kind
from ._fuse import merge_ranked
from ._params import MAX_K, MAX_RERANK, MAX_SHORTLIST, SearchParams
from ._result import SearchHit, SearchResult
from ._run import cascade, cascade_many
from ._signature import PARAMS as SIGNATURE_PARAMS
from ._signature import SIGNATURE_VERSION, signature, signature_dim, train_codebook
from ._stage2 import SIFT_BLOB, ingest_blobs
from ._timing import format_timings
from ._verify_many import verify_many
from ._verify_sift import Keypoints, Verification, VerificationError, keypoints, query_keypoints, verify

__all__ = ["signature", "signature_dim", "train_codebook", "SIGNATURE_VERSION", "SIGNATURE_PARAMS",
           "SignatureIndex", "FLAT_LIMIT", "choose_kind", "Keypoints", "Verification", "VerificationError",
           "keypoints", "query_keypoints", "verify", "verify_many", "SIFT_BLOB", "ingest_blobs", "SearchParams",
           "MAX_K",
           "MAX_SHORTLIST", "MAX_RERANK", "SearchHit", "SearchResult", "CascadeHit", "CascadeResult",
           "CASCADE_DEFAULTS", "cascade", "cascade_many", "compare_candidates", "verify_candidates", "stage3_seed",
           "format_timings", "merge_ranked"]
