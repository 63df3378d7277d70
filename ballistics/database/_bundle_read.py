"""Reading an exchange bundle: everything validated, with caps, before anything is used.

The file must be a regular file (opened non-blocking and checked with ``fstat``, so a
FIFO, a device or a link to ``/dev/zero`` is refused without reading it); members are
streamed with caps on their number, each one's size and the total (a small bundle
declaring, or inflating to, a huge member is refused at the cap); JSON members are
parsed with size and depth caps; ``.npy`` headers are checked (dtype, shape, size)
before any array exists; every signature is finite and of the model's length; the
manifest's model records are well formed (the current layout or the earlier one); every
stage-2 key-point blob is parsed; ids are valid Unicode without control characters;
counts match the manifest; every entry's lab is the (signed) manifest's lab.  Any
problem raises a :class:`~ballistics.errors.BundleError` subclass.
"""

from __future__ import annotations

import ast
import hashlib
import io
import os
import stat
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from .._json import loads_bounded
from .._version import __version__
from ..errors import (
    BallisticsError,
    BundleError,
    BundleFormatError,
    BundleIntegrityError,
    BundleSignatureError,
    BundleVersionError,
)
from ..retrieval import SIFT_BLOB, Keypoints, VerificationError
from ._bundle_format import (
    CATALOGUE,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    MANIFEST_SHA,
    MAX_BUNDLE_BYTES,
    MAX_JSON_BYTES,
    MAX_JSON_DEPTH,
    MAX_MEMBER_BYTES,
    MAX_MEMBERS,
    MAX_TOTAL_BYTES,
    MEMBER_RE,
    SIGNATURE,
    Bundle,
    _fingerprint,
    _load_public,
    check_id,
    check_lab,
    is_legacy_record,
    is_model_record,
)
from ._entry import PARTS

__all__ = ["read_bundle"]

_CHUNK = 1 << 20



#: What reading a damaged or hostile zip can raise (each becomes a BundleFormatError).
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, zlib.error,
               NotImplementedError, RuntimeError, MemoryError, OverflowError)


def _unreadable(p: Any, exc: BaseException) -> BundleFormatError:
    return BundleFormatError(f"{p}: not a readable bundle -- truncated, damaged or not a zip file "
                             f"({type(exc).__name__}: {str(exc)[:200]}).")


def _open_regular(p: Path) -> io.BufferedReader:
    """Open a regular file without blocking on a FIFO or reading a device."""
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError as exc:
        raise BundleFormatError(f"{p}: no such bundle.") from exc
    except OSError as exc:
        raise BundleFormatError(f"{p}: cannot open the bundle ({exc.strerror or exc}).") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise BundleFormatError(f"{p}: not a regular file (a FIFO, device or directory); refused unread.")
        if st.st_size > MAX_BUNDLE_BYTES:
            raise BundleFormatError(f"{p}: {st.st_size} bytes, above the bundle limit of {MAX_BUNDLE_BYTES}.")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _read_members(p: Path, z: zipfile.ZipFile) -> dict[str, bytes]:
    infos = z.infolist()
    if len(infos) > MAX_MEMBERS:
        raise BundleFormatError(f"{p}: {len(infos)} members, above the limit of {MAX_MEMBERS}.")
    names = [i.filename for i in infos]
    if len(set(names)) != len(names):
        raise BundleIntegrityError(f"{p}: a member name occurs twice (members were added).")
    total = sum(i.file_size for i in infos)
    for i in infos:
        if i.file_size > MAX_MEMBER_BYTES:
            raise BundleFormatError(f"{p}: member {i.filename!r:.80} declares {i.file_size} bytes, above the "
                                    f"limit of {MAX_MEMBER_BYTES}.")
        if i.is_dir() or i.flag_bits & 0x1:
            raise BundleFormatError(f"{p}: member {i.filename!r:.80} is a directory or encrypted.")
    if total > MAX_TOTAL_BYTES:
        raise BundleFormatError(f"{p}: members total {total} bytes uncompressed, above the limit of "
                                f"{MAX_TOTAL_BYTES}.")
    out: dict[str, bytes] = {}
    for i in infos:
        buf = bytearray()
        with z.open(i) as fh:
            while True:
                block = fh.read(min(_CHUNK, i.file_size + 1 - len(buf)) or 1)
                if not block:
                    break
                buf += block
                if len(buf) > i.file_size:
                    raise BundleIntegrityError(f"{p}: member {i.filename!r:.80} inflates beyond its declared "
                                               f"{i.file_size} bytes.")
        out[i.filename] = bytes(buf)
    return out


def _load_npy(p: Path, name: str, data: bytes, dim: int) -> np.ndarray:
    """A float32 (n, dim) matrix from .npy bytes; the header is checked before any array is made."""
    f = io.BytesIO(data)
    try:
        major, _minor = np.lib.format.read_magic(f)
        if major not in (1, 2, 3):
            raise ValueError(f"npy version {major}")
        hlen_size = 2 if major == 1 else 4
        hlen = int.from_bytes(f.read(hlen_size), "little")
        if hlen > 4096:
            raise ValueError(f"header of {hlen} bytes")
        header = ast.literal_eval(f.read(hlen).decode("latin1"))
    except (ValueError, SyntaxError, UnicodeDecodeError, MemoryError, RecursionError) as exc:
        raise BundleFormatError(f"{p}: {name} is not a valid .npy file ({exc}).") from exc
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        raise BundleFormatError(f"{p}: {name} has a malformed .npy header.")
    shape = header["shape"]
    if (header["descr"] != "<f4" or header["fortran_order"] is not False or not isinstance(shape, tuple)
            or len(shape) != 2 or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in shape)
            or shape[1] != dim):
        raise BundleFormatError(f"{p}: {name} declares {header['descr']!r} {shape!r:.60}, expected little-endian "
                                f"float32 (n, {dim}).")
    offset = f.tell()
    if len(data) - offset != shape[0] * dim * 4:
        raise BundleFormatError(f"{p}: {name} declares {shape[0]} rows but holds {len(data) - offset} bytes of data.")
    m = np.frombuffer(data, dtype="<f4", offset=offset).reshape(shape).astype(np.float32)
    if not np.isfinite(m).all():
        raise BundleFormatError(f"{p}: {name} holds NaN or infinite signature values.")
    return m


def _check_signature(p: Path, man_bytes: bytes, sig: bytes | None, public_key: Any) -> str | None:
    if public_key is None:
        return None
    key = _load_public(public_key)
    from cryptography.exceptions import InvalidSignature

    if sig is None:
        raise BundleSignatureError(f"{p}: the bundle is not signed, but a public key was given to check it.")
    try:
        key.verify(sig, man_bytes)
    except InvalidSignature as exc:
        raise BundleSignatureError(f"{p}: the signature does not verify with the given public key "
                                   "(wrong key, or the bundle was altered).") from exc
    return _fingerprint(key)


def _manifest(p: Path, data: dict[str, bytes]) -> tuple[dict[str, Any], bytes]:
    if MANIFEST not in data:
        raise BundleFormatError(f"{p}: no {MANIFEST}; not an exchange bundle.")
    man_bytes = data.pop(MANIFEST)
    manifest = loads_bounded(man_bytes, what=f"{p}: {MANIFEST}", max_bytes=MAX_JSON_BYTES, max_depth=MAX_JSON_DEPTH,
                             error=BundleIntegrityError)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        fmt = manifest.get("format") if isinstance(manifest, dict) else None
        raise BundleFormatError(f"{p}: not an {FORMAT} (format {fmt!r:.80}).")
    ver = manifest.get("format_version")
    if ver != FORMAT_VERSION:
        raise BundleVersionError(f"{p}: bundle format version {ver!r:.40}; this ballistics {__version__} reads "
                                 f"version {FORMAT_VERSION} (written by ballistics "
                                 f"{str(manifest.get('engine_version'))[:40]}).")
    sha_line = data.pop(MANIFEST_SHA, None)
    if sha_line is None:
        raise BundleIntegrityError(f"{p}: {MANIFEST_SHA} is missing (a member was removed).")
    if sha_line.split(b" ")[0].decode(errors="replace") != hashlib.sha256(man_bytes).hexdigest():
        raise BundleIntegrityError(f"{p}: {MANIFEST} was edited after export (its SHA-256 no longer matches).")
    return manifest, man_bytes


def _check_models(p: Path, manifest: dict[str, Any]) -> None:
    """The manifest's model records: the current layout (two model records) or the earlier one."""
    sm = manifest.get("signature_model")
    if "global_signature" in manifest:
        for k in ("signature_model", "global_signature"):
            if not is_model_record(manifest.get(k)):
                raise BundleFormatError(f"{p}: the manifest's {k} {manifest.get(k)!r:.120} is not a model record "
                                        "(name, version, 64-hex-digit sha256).")
    elif not is_legacy_record(sm):
        raise BundleFormatError(f"{p}: the manifest declares no valid signature model (got {sm!r:.120}).")


def _check_members(p: Path, data: dict[str, bytes], manifest: dict[str, Any]) -> None:
    listed = manifest.get("members")
    if not isinstance(listed, dict):
        raise BundleIntegrityError(f"{p}: the manifest lists no members.")
    extra = sorted(set(data) - set(listed))
    if extra:
        raise BundleIntegrityError(f"{p}: members not in the manifest were added: {extra[:5]}.")
    gone = sorted(set(listed) - set(data))
    if gone:
        raise BundleIntegrityError(f"{p}: members listed in the manifest are missing (removed): {gone[:5]}.")
    for name, meta in listed.items():
        if not MEMBER_RE.match(name):
            raise BundleFormatError(f"{p}: member name {name!r:.80} is not one a bundle holds.")
        d = data[name]
        if (not isinstance(meta, dict) or len(d) != meta.get("bytes")
                or hashlib.sha256(d).hexdigest() != meta.get("sha256")):
            raise BundleIntegrityError(f"{p}: member {name} was changed after export (SHA-256 mismatch).")


def read_bundle(path: str | os.PathLike[str], public_key: Any = None) -> Bundle:
    """Open and validate a bundle completely; nothing is written anywhere.

    Parameters
    ----------
    path : path-like
        The bundle (zip), a regular file.
    public_key : path, bytes or Ed25519PublicKey, optional
        The exporting lab's public key (PEM).  When given, the bundle must carry a
        signature that verifies with it.

    Returns
    -------
    Bundle
        ``signed`` says whether it carries a signature, ``signed_by`` whose key
        verified it (None without ``public_key``).

    Raises
    ------
    BundleFormatError, BundleVersionError, BundleIntegrityError, BundleSignatureError
        Which one says what is wrong; resource caps raise :class:`BundleFormatError`.
    """
    p = Path(path)
    h = hashlib.sha256()
    try:
        with _open_regular(p) as fh:
            for block in iter(lambda: fh.read(_CHUNK), b""):
                h.update(block)
            fh.seek(0)
            with zipfile.ZipFile(fh) as z:
                data = _read_members(p, z)
    except BundleError:
        raise
    except _ZIP_ERRORS as exc:
        raise _unreadable(p, exc) from exc
    manifest, man_bytes = _manifest(p, data)
    sig = data.pop(SIGNATURE, None)
    signed_by = _check_signature(p, man_bytes, sig, public_key)
    _check_members(p, data, manifest)
    entries = loads_bounded(data.pop(CATALOGUE, b""), what=f"{p}: {CATALOGUE}", max_bytes=MAX_JSON_BYTES,
                            max_depth=MAX_JSON_DEPTH, error=BundleFormatError)
    _check_models(p, manifest)
    sdim = manifest.get("signature_dim")
    if not isinstance(sdim, int) or isinstance(sdim, bool) or not 0 < sdim <= 65536:
        raise BundleFormatError(f"{p}: signature_dim {sdim!r:.40} is not a valid length.")
    sigs = {}
    for name in [m for m in data if m.startswith("signatures/")]:
        part = name[len("signatures/"):-len(".npy")]
        if part not in PARTS:
            raise BundleFormatError(f"{p}: {name}: unknown part {part!r}.")
        sigs[part] = _load_npy(p, name, data.pop(name), sdim)
    _check_entries(p, entries, sigs, data, manifest)
    return Bundle(manifest=manifest, entries=entries, signatures=sigs, members=data, signed_by=signed_by,
                  signed=sig is not None, sha256=h.hexdigest())


def _check_entry(p: Path, e: Any, lab: str, sigs: dict[str, np.ndarray], members: dict[str, bytes],
                 used_rows: set[tuple[str, int]]) -> None:
    if not isinstance(e, dict):
        raise BundleFormatError(f"{p}: an entry of {CATALOGUE} is not an object.")
    sid = check_id(e.get("scan_id"), f"{p}: an entry's scan id", optional=False)
    what = f"{p}: entry {sid!r}"
    for k in ("case_id", "exhibit_id", "firearm_id"):
        check_id(e.get(k), f"{what}: {k}")
    if e.get("instrument") is not None:
        check_id(e.get("instrument"), f"{what}: instrument")
    sha = e.get("sha256")
    if not isinstance(sha, str) or len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise BundleFormatError(f"{what}: the height-array hash is not 64 hex digits.")
    if e.get("lab") != lab:
        raise BundleFormatError(f"{what}: filed under lab {e.get('lab')!r:.80}, but the manifest was written by "
                                f"{lab!r}; a bundle carries only its own lab's entries.")
    for k, n in (("shape", 2), ("spacing_m", 2)):
        v = e.get(k)
        if v is not None and not (isinstance(v, list) and len(v) == n and all(
                isinstance(x, (int, float)) and not isinstance(x, bool) and np.isfinite(x) and x > 0 for x in v)):
            raise BundleFormatError(f"{what}: {k} {v!r:.80} is not two positive numbers.")
    rows, blobs, surfaces = e.get("rows"), e.get("blobs", {}), e.get("surfaces", {})
    if not isinstance(rows, dict) or not isinstance(blobs, dict) or not isinstance(surfaces, dict):
        raise BundleFormatError(f"{what}: rows, blobs and surfaces must be objects.")
    if "breech_face" not in rows:
        raise BundleFormatError(f"{what} has no breech-face signature.")
    for part, row in rows.items():
        if (part not in sigs or not isinstance(row, int) or isinstance(row, bool)
                or not 0 <= row < len(sigs[part]) or (part, row) in used_rows):
            raise BundleFormatError(f"{what} names a missing or shared {str(part)[:40]} signature row.")
        used_rows.add((part, row))
    for name, m in blobs.items():
        if not isinstance(m, str) or m not in members or not m.startswith("blobs/"):
            raise BundleFormatError(f"{what} names a missing member {m!r:.80}.")
        check_id(name, f"{what}: blob name", optional=False)
        if name == SIFT_BLOB:
            try:
                kp = Keypoints.from_bytes(members[m])
            except VerificationError as exc:
                raise BundleFormatError(f"{what}: key-point blob {m} cannot be parsed ({exc}).") from exc
            if not (np.isfinite(kp.points).all() and np.isfinite(kp.angles).all() and np.isfinite(kp.spacing_m)):
                raise BundleFormatError(f"{what}: key-point blob {m} holds NaN or infinite values.")
    for role, s in surfaces.items():
        if (role not in PARTS or not isinstance(s, dict) or not isinstance(s.get("member"), str)
                or s["member"] not in members or s.get("sha256") != s["member"][len("surfaces/"):-len(".x3p")]):
            raise BundleFormatError(f"{what} names a missing or inconsistent surface member.")


def _check_entries(p: Path, entries: Any, sigs: dict[str, np.ndarray], members: dict[str, bytes],
                   manifest: dict[str, Any]) -> None:
    if not isinstance(entries, list):
        raise BundleFormatError(f"{p}: {CATALOGUE} is not a list of entries.")
    try:
        lab = check_lab(manifest.get("lab", ""))
    except BallisticsError as exc:
        raise BundleFormatError(f"{p}: {exc}") from exc
    used: set[tuple[str, int]] = set()
    ids: set[str] = set()
    for e in entries:
        _check_entry(p, e, lab, sigs, members, used)
        if e["scan_id"] in ids:
            raise BundleFormatError(f"{p}: scan id {e['scan_id']!r} occurs twice.")
        ids.add(e["scan_id"])
    counts = manifest.get("counts")
    if not isinstance(counts, dict):
        raise BundleFormatError(f"{p}: the manifest records no counts.")
    want = {"entries": len(entries), "signatures": {k: len(v) for k, v in sigs.items() if len(v)},
            "blobs": sum(len(e.get("blobs", {})) for e in entries),
            "surfaces": sum(1 for m in members if m.startswith("surfaces/"))}
    for k, v in want.items():
        if counts.get(k) != v:
            raise BundleFormatError(f"{p}: the manifest counts {k} = {counts.get(k)!r:.60}, the bundle holds {v}.")
    if any(len(v) != sum(1 for part, _ in used if part == k) for k, v in sigs.items()):
        raise BundleFormatError(f"{p}: signature rows that no entry names.")


def signing_key_for(path: str | os.PathLike[str], public_keys: Any) -> tuple[Any, bool]:
    """Which of ``public_keys`` verifies a bundle's signature; reads only its manifest and signature.

    A cheap first look used to pick a bundle's key from a keyring; the bundle is then
    read and validated in full with that key (:func:`read_bundle`).

    Parameters
    ----------
    path : path-like
        The bundle.
    public_keys : sequence of (path, bytes or Ed25519PublicKey)
        Candidate public keys (PEM).

    Returns
    -------
    key, signed : (Ed25519PublicKey or None, bool)
        The first key (loaded) whose signature verifies (None when the bundle is unsigned or
        none verifies), and whether the bundle carries a signature.

    Raises
    ------
    BundleFormatError, BundleSignatureError
        Not a readable bundle, an oversized manifest or signature, or a key that cannot
        be loaded.
    """
    p = Path(path)
    caps = {MANIFEST: MAX_JSON_BYTES, SIGNATURE: 4096}
    got: dict[str, bytes] = {}
    try:
        with _open_regular(p) as fh, zipfile.ZipFile(fh) as z:
            for info in z.infolist():
                if info.filename in caps and info.filename not in got:
                    if info.file_size > caps[info.filename]:
                        raise BundleFormatError(f"{p}: {info.filename} declares {info.file_size} bytes, above "
                                                f"the limit of {caps[info.filename]}.")
                    with z.open(info) as m:
                        got[info.filename] = m.read(caps[info.filename] + 1)[: caps[info.filename] + 1]
                    if len(got[info.filename]) > caps[info.filename]:
                        raise BundleIntegrityError(f"{p}: {info.filename} inflates beyond its declared size.")
    except BundleError:
        raise
    except _ZIP_ERRORS as exc:
        raise _unreadable(p, exc) from exc
    sig, man = got.get(SIGNATURE), got.get(MANIFEST)
    keys = list(public_keys)
    if sig is None or man is None or not keys:
        return None, sig is not None
    loaded = [_load_public(k) for k in keys]
    from cryptography.exceptions import InvalidSignature

    for key in loaded:
        try:
            key.verify(sig, man)
        except InvalidSignature:
            continue
        return key, True
    return None, True
