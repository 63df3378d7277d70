"""Signature models: which stage-1 design a collection is indexed with, by name.

A model is named, versioned and fingerprinted (SHA-256 of its parameters and frozen
training data), so a database or a bundle can say which one its stage-1 data come
from and refuse to mix two.

* ``global-640`` -- the 640-value signature (SIFT-VLAD + polar spectrum) in FAISS
  (:func:`ballistics.retrieval.signature`, :class:`SignatureIndex`).
* ``local-sift`` -- the key points' inverted file with orientation-consistent votes
  (:class:`ballistics.retrieval.LocalIndex`); its per-entry data is the blob
  :data:`LOCAL_BLOB` (:func:`local_blob`, 9 bytes per key point), made from the stage-2
  key points of the stored breech face.  The global signatures are still stored (bundles
  and the firing-pin part use them), but stage 1 ranks by the local votes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from .._json import canonical_json
from ..errors import ParameterError
from ._local_index import LOCAL_PARAMS, LOCAL_VERSION, local_blob, model_hash
from ._signature import PARAMS as SIGNATURE_PARAMS
from ._signature import SIGNATURE_VERSION
from ._verify_sift import Keypoints

__all__ = ["SignatureModel", "MODELS", "DEFAULT_MODEL", "LEGACY_MODEL", "LOCAL_BLOB", "get_model", "model_blobs"]

#: Name of the per-entry blob of the ``local-sift`` model.
LOCAL_BLOB = f"stage1:{LOCAL_VERSION}"


@dataclass(frozen=True)
class SignatureModel:
    """A stage-1 design: ``name``, ``version``, ``kind`` (``"global"`` or ``"local"``)."""

    name: str
    version: str
    kind: str

    def sha256(self) -> str:
        """Fingerprint of the parameters and the frozen training data."""
        if self.kind == "local":
            return model_hash()
        from ._codebook import load
        h = hashlib.sha256(canonical_json(SIGNATURE_PARAMS).encode())
        for k, v in sorted(load().items()):
            h.update(k.encode())
            h.update(v.astype("<f8").tobytes())
        return h.hexdigest()

    def record(self) -> dict[str, str]:
        """What a database or bundle records: ``{"name", "version", "sha256"}``."""
        return {"name": self.name, "version": self.version, "sha256": self.sha256()}

    def params(self) -> dict[str, Any]:
        return dict(LOCAL_PARAMS if self.kind == "local" else SIGNATURE_PARAMS)


MODELS: dict[str, SignatureModel] = {
    "global-640": SignatureModel("global-640", SIGNATURE_VERSION, "global"),
    "local-sift": SignatureModel("local-sift", LOCAL_VERSION, "local"),
}
#: The model of databases that record none (made before models were recorded).
LEGACY_MODEL = "global-640"
#: The model of new databases: stage 1 takes the key points' votes and the global
#: signatures together (``SearchParams.votes``).
DEFAULT_MODEL = "local-sift"


def get_model(name: str | SignatureModel) -> SignatureModel:
    """The model called ``name``; :class:`ParameterError` names the known ones."""
    if isinstance(name, SignatureModel):
        return name
    try:
        return MODELS[str(name)]
    except KeyError:
        raise ParameterError(f"unknown signature model {name!r}; known: {', '.join(sorted(MODELS))}") from None


def model_blobs(model: str | SignatureModel, sift_blob: bytes | Keypoints | None) -> dict[str, bytes]:
    """The model's per-entry blobs, from the entry's stage-2 key points (none for ``global-640``)."""
    m = get_model(model)
    if m.kind != "local" or sift_blob is None:
        return {}
    kp = sift_blob if isinstance(sift_blob, Keypoints) else Keypoints.from_bytes(sift_blob)
    return {LOCAL_BLOB: local_blob(kp)}
