"""Exchange bundles: the format, its limits, the signature model and the signing keys.

Members of a bundle (format :data:`FORMAT_VERSION`)::

    manifest.json            format and engine versions, the exporting database's
                             signature model (``signature_model``: name, version,
                             SHA-256) and the model of the global signatures it
                             carries (``global_signature``), exporting lab, date,
                             counts, parameters, and the SHA-256 and size of every
                             other member
    manifest.json.sha256     SHA-256 of manifest.json (so an edited manifest is caught
                             even in an unsigned bundle)
    manifest.json.sig        optional detached Ed25519 signature of manifest.json
    catalogue.json           partner-visible fields of each entry: scan id, lab, case,
                             exhibit and firearm ids (where known), instrument, pixel
                             size, shape, height-array SHA-256; which signature rows,
                             blobs and surfaces belong to it
    signatures/<part>.npy    float32 signature matrix of each part
    blobs/<i>-<j>.bin        the per-scan blobs of search's verification stages
    surfaces/<sha>.x3p       optionally, the extracted surfaces (never the evidence file)

References
----------
Bernstein, D. J. et al. (2012). High-speed high-security signatures. Journal of
Cryptographic Engineering 2, 77-89 (Ed25519; implementation: ``cryptography``).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_write_bytes, check_output
from .._json import canonical_json
from ..errors import BundleFormatError, BundleSignatureError, OutputError, ParameterError
from ..retrieval import SIGNATURE_PARAMS, SIGNATURE_VERSION

FORMAT = "openbreech-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MANIFEST_SHA = "manifest.json.sha256"
SIGNATURE = "manifest.json.sig"
CATALOGUE = "catalogue.json"

#: Largest bundle file read (bytes).
MAX_BUNDLE_BYTES = 8 << 30
#: Most members a bundle may have.
MAX_MEMBERS = 200_000
#: Largest member, uncompressed (bytes).
MAX_MEMBER_BYTES = 512 << 20
#: Largest total of all members, uncompressed (bytes).
MAX_TOTAL_BYTES = 8 << 30
#: Largest JSON member (manifest, catalogue), bytes, and its nesting depth.
MAX_JSON_BYTES = 256 << 20
MAX_JSON_DEPTH = 16
#: Longest id (scan, case, exhibit, firearm), characters.
MAX_ID_CHARS = 256

_LAB_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$")
#: Member names a bundle may hold.
MEMBER_RE = re.compile(r"^(manifest\.json(\.sha256|\.sig)?|catalogue\.json|signatures/[a-z_]{1,32}\.npy|"
                       r"blobs/\d{6,9}-\d{1,4}\.bin|surfaces/[0-9a-f]{64}\.x3p)$")


#: Longest model name or version in a manifest, characters.
MAX_MODEL_CHARS = 128
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def legacy_signature_model() -> dict[str, str]:
    """The global signature's record in the earlier manifest layout: ``{"id", "sha256"}``.

    Bundles written before manifests named the exporting database's model record only
    this under ``signature_model``; their signatures are always global ones.
    """
    from ..retrieval._signature import _codebook

    h = hashlib.sha256(canonical_json(SIGNATURE_PARAMS).encode())
    for k, v in sorted(_codebook().items()):
        h.update(k.encode())
        h.update(np.ascontiguousarray(v).tobytes())
    return {"id": SIGNATURE_VERSION, "sha256": h.hexdigest()}


def global_signature_model() -> dict[str, str]:
    """This library's global signature model record (``{"name", "version", "sha256"}``)."""
    from ..retrieval._models import get_model

    return get_model("global-640").record()


def is_model_record(rec: Any) -> bool:
    """Whether ``rec`` is a well-formed ``{"name", "version", "sha256"}`` model record."""
    return (isinstance(rec, dict) and set(rec) == {"name", "version", "sha256"}
            and all(isinstance(rec[k], str) and 0 < len(rec[k]) <= MAX_MODEL_CHARS and rec[k].isprintable()
                    for k in ("name", "version")) and isinstance(rec["sha256"], str)
            and bool(_HEX64.match(rec["sha256"])))


def is_legacy_record(rec: Any) -> bool:
    """Whether ``rec`` is a well-formed record of the earlier layout (``{"id", "sha256"}``)."""
    return (isinstance(rec, dict) and set(rec) == {"id", "sha256"} and isinstance(rec["id"], str)
            and 0 < len(rec["id"]) <= MAX_MODEL_CHARS and rec["id"].isprintable()
            and isinstance(rec["sha256"], str) and bool(_HEX64.match(rec["sha256"])))


def check_lab(lab: Any) -> str:
    """A lab name: 1-64 letters, digits, spaces, '.', '_' or '-'; else :class:`ParameterError`."""
    if not isinstance(lab, str) or not _LAB_RE.match(lab.strip()):
        raise ParameterError(f"lab name {lab!r} must be 1-64 letters, digits, spaces, '.', '_' or '-', "
                             "starting with a letter or digit")
    return lab.strip()


def check_id(value: Any, what: str, *, optional: bool = True) -> str | None:
    """An id from a bundle: valid Unicode text without control characters, at most :data:`MAX_ID_CHARS`."""
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_ID_CHARS:
        raise BundleFormatError(f"{what} must be text of 1-{MAX_ID_CHARS} characters, got {value!r:.80}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BundleFormatError(f"{what} is not valid Unicode ({exc})") from exc
    if any(ord(c) < 32 or 127 <= ord(c) < 160 or c in "\u2028\u2029" for c in value):
        raise BundleFormatError(f"{what} {value!r:.80} holds control characters")
    return value


@dataclass
class Bundle:
    """A validated bundle in memory.

    Attributes
    ----------
    manifest : dict
        The parsed manifest.
    entries : list of dict
        ``catalogue.json``.
    signatures : dict of str to ndarray
        Signature matrix per part (finite float32).
    members : dict of str to bytes
        Every other member (blobs, surfaces) by name.
    signed_by : str or None
        SHA-256 fingerprint of the public key the signature verified with.
    signed : bool
        Whether the bundle carries a signature (verified or not).
    sha256 : str
        SHA-256 of the bundle file.
    """

    manifest: dict[str, Any]
    entries: list[dict[str, Any]]
    signatures: dict[str, np.ndarray]
    members: dict[str, bytes] = field(repr=False)
    signed_by: str | None = None
    signed: bool = False
    sha256: str = ""

    @property
    def lab(self) -> str:
        """The exporting lab."""
        return str(self.manifest["lab"])

    @property
    def legacy_manifest(self) -> bool:
        """Whether the manifest has the earlier layout (only the global signature's id and SHA-256)."""
        return "global_signature" not in self.manifest

    @property
    def signature_model(self) -> dict[str, str | None]:
        """The exporting database's signature model: ``{"name", "version", "sha256"}``.

        A manifest of the earlier layout names no model: its database searched with the
        global signatures, so this is ``global-640`` with the version the manifest gives
        (``sha256`` None: that layout fingerprinted the signature differently).
        """
        rec = self.manifest["signature_model"]
        if self.legacy_manifest:
            return {"name": "global-640", "version": str(rec["id"]), "sha256": None}
        return dict(rec)

    @property
    def global_signature(self) -> dict[str, str]:
        """Record of the model that made the bundle's global signatures, as the manifest gives it."""
        return dict(self.manifest["signature_model" if self.legacy_manifest else "global_signature"])

    @property
    def model_matches(self) -> bool:
        """Whether the bundle's global signatures come from this library's global signature model."""
        if self.legacy_manifest:
            return self.manifest.get("signature_model") == legacy_signature_model()
        return self.manifest.get("global_signature") == global_signature_model()


def _need_crypto() -> None:
    try:
        import cryptography  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise BundleSignatureError("signing and checking bundles needs the optional dependency 'cryptography': "
                                   "pip install 'openbreech[sign]'.") from exc


def generate_signing_key(private_path: str | os.PathLike[str], public_path: str | os.PathLike[str], *,
                         force: bool = False) -> str:
    """Write a new Ed25519 key pair as PEM files; returns the public key's SHA-256 fingerprint.

    Parameters
    ----------
    private_path, public_path : path-like
        Where to write the private key (PKCS#8, unencrypted: keep it private) and the
        public key (SubjectPublicKeyInfo) to give to partner labs.
    force : bool, default False
        Replace an existing *public* key file; an existing private key is never replaced.

    Raises
    ------
    OutputError
        The paths are the same, the private key exists, or the public key exists without
        ``force`` (nothing was written).
    """
    priv_p, pub_p = Path(private_path), Path(public_path)
    try:
        same = priv_p.resolve() == pub_p.resolve()
    except OSError:
        same = False
    if same:
        raise OutputError(f"the private and public key paths are the same file ({priv_p}); give two paths")
    check_output(priv_p, what="private key")  # never replace an existing private key
    check_output(pub_p, force=force, what="public key")
    _need_crypto()
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    priv = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    atomic_write_bytes(priv_p, priv, mode=0o600)  # never readable by others, not even briefly
    atomic_write_bytes(pub_p, pub)
    return _fingerprint(key.public_key())


def _fingerprint(public_key: Any) -> str:
    from cryptography.hazmat.primitives import serialization

    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def _load_private(key: Any) -> Any:
    _need_crypto()
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    if isinstance(key, Ed25519PrivateKey):
        return key
    try:
        data = _read_key(key)
        k = serialization.load_pem_private_key(data, password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise BundleSignatureError(f"cannot load the Ed25519 signing key ({exc}).") from exc
    if not isinstance(k, Ed25519PrivateKey):
        raise BundleSignatureError("the signing key is not an Ed25519 private key.")
    return k


def _load_public(key: Any) -> Any:
    _need_crypto()
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if isinstance(key, Ed25519PublicKey):
        return key
    try:
        data = _read_key(key)
        k = serialization.load_pem_public_key(data)
    except (OSError, ValueError, TypeError) as exc:
        raise BundleSignatureError(f"cannot load the Ed25519 public key ({exc}).") from exc
    if not isinstance(k, Ed25519PublicKey):
        raise BundleSignatureError("the public key is not an Ed25519 key.")
    return k




def _read_key(key: Any) -> bytes:
    """A PEM key's bytes from a path (a regular file of at most 64 kB) or bytes."""
    if not isinstance(key, (str, os.PathLike)):
        return bytes(key)
    if not os.path.isfile(key):
        raise ValueError(f"{key} is not a regular file")
    with open(key, "rb") as fh:
        data = fh.read(65537)
    if len(data) > 65536:
        raise ValueError(f"{key} is too large to be a key")
    return data
