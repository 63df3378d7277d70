"""``ballistics db ...``: the case database (init, add, search, list, remove, stats, verify, rebuild,
migrate, recover, export, import, keygen).  Every operating-system error becomes one line and exit status 2."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from typing import Any

from . import emit


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("db", help="case database: store scans and search them for the same firearm")
    dsub = p.add_subparsers(dest="db_command", metavar="ACTION")

    q = dsub.add_parser("init", help="create an empty case database in PATH")
    q.add_argument("path")
    q.add_argument("--index", default="auto", choices=["auto", "flat", "ivf", "ivfsq", "ivfpq", "hnsw"],
                   help="FAISS index kind (auto: exact below 50 000 signatures, IVF above)")
    q.add_argument("--model", default=None, help="signature model of stage 1: local-sift (default: key-point "
                   "votes and global signatures) or global-640 (global signatures only)")
    q.add_argument("--json", action="store_true", help="print JSON")
    q.set_defaults(func=_os_errors(run_init))

    q = dsub.add_parser("add", help="add scan files to the database")
    q.add_argument("path", help="database directory")
    q.add_argument("files", nargs="+", help="x3p (or PNG/TIFF) scans")
    q.add_argument("--case", default=None, help="case id of these scans")
    q.add_argument("--firearm", default=None, help="known firearm id (test fires)")
    q.add_argument("--jobs", type=int, default=1,
                   help="worker processes (a local cluster of ballistics.batch) computing extraction, signatures "
                        "and stage-2 data; this process alone writes the database (default 1: no cluster)")
    q.add_argument("--no-preprocess", dest="preprocess", action="store_false",
                   help="the files are already extracted breech faces (e.g. processed Fadul scans)")
    q.add_argument("--json", action="store_true", help="print JSON")
    q.set_defaults(func=_os_errors(run_add))

    q = dsub.add_parser(
        "search", help="rank stored scans by similarity to FILE",
        description="Rank stored scans by similarity to FILE.  PATH is a database directory or an exchange bundle; "
                    "--bundle adds bundles (repeat it) searched together with PATH without importing them.  All "
                    "sources are searched with the database's stage-1 model (the model of new databases without one); "
                    "each source keeps its own stage-1 short list, the verified candidates of all sources are "
                    "merged, stage 3 compares the best of the union, and every hit names its lab and source.  "
                    "Signed bundles need their lab's key among --public-key (repeat it: a keyring) or "
                    "--trust-unsigned.")
    q.add_argument("path", help="database directory, or an exchange bundle (.zip) searched without importing it")
    q.add_argument("file", help="the query scan")
    q.add_argument("-k", type=int, default=10, help="length of the candidate list (default 10)")
    q.add_argument("--rerank", type=int, default=None,
                   help="stage 3: candidates compared in full with compare (default 10; 0 = off)")
    q.add_argument("--shortlist", type=int, default=None,
                   help="stage 1: length of the global signatures' short list (default 1000; deeper finds more "
                        "mates, at about 1.1 ms per added candidate on one thread)")
    q.add_argument("--votes", type=int, default=None,
                   help="stage 1 of a local-sift database: the key points' best votes added to the short list "
                        "(default 250; 0 = signatures only)")
    q.add_argument("--rerank-min-inliers", type=int, default=None,
                   help="stage 3 only for candidates with at least this many stage-2 inliers (default 6)")
    q.add_argument("--no-verify", dest="verify", action="store_false",
                   help="skip stage 2 (SIFT key points under one rigid motion)")
    q.add_argument("--no-seed", dest="seed", action="store_false", default=None,
                   help="stage 3 compares over the full circle in both handedness instead of about stage 2's "
                        "rotation and handedness")
    q.add_argument("--seed-window", type=float, default=None, metavar="DEG",
                   help="half-width of stage 3's rotation window about stage 2's rotation, degrees (default 18)")
    q.add_argument("--seed-min-inliers", type=int, default=None,
                   help="candidates with fewer stage-2 inliers are compared over the full circle (default 8)")
    q.add_argument("--threads", type=int, default=None, metavar="N",
                   help="threads for the search: the key points' votes and stage 2's verifications run on N "
                        "threads, each stage-3 comparison on one (default 1; the answers do not depend on it)")
    q.add_argument("--timings", action="store_true", help="print the time each stage took (also with -v)")
    q.add_argument("--verbose", dest="search_verbose", action="store_true",
                   help="print the time each stage took and how each candidate's stage 3 was run")
    q.add_argument("--no-preprocess", dest="preprocess", action="store_false",
                   help="the query is already an extracted breech face")
    q.add_argument("--bundle", action="append", default=[], metavar="BUNDLE",
                   help="an exchange bundle (.zip) searched together with PATH without importing it; repeat "
                        "for several labs")
    q.add_argument("--public-key", action="append", default=[], metavar="KEY",
                   help="a partner lab's public key (PEM); repeat it: every signed bundle must verify with one of "
                        "them, and when keys are given an unsigned bundle needs --trust-unsigned")
    q.add_argument("--trust-unsigned", action="store_true",
                   help="search signed bundles without checking their signature when no key is given, and "
                        "unsigned bundles when keys are given")
    q.add_argument("--lab", default="local",
                   help="name shown as the lab of the database's own scans when bundles are searched with it "
                        "(default: local)")
    q.add_argument("--json", action="store_true", help="print JSON")
    q.set_defaults(func=_os_errors(run_search))

    q = dsub.add_parser("list", help="list the stored scans")
    q.add_argument("path")
    q.add_argument("--case", default=None, help="only this case")
    q.add_argument("--all", action="store_true", help="include removed scans")
    q.add_argument("--json", action="store_true", help="print JSON")
    q.set_defaults(func=_os_errors(run_list))

    q = dsub.add_parser("remove", help="withdraw a scan from searches (kept on disk and in the audit log)")
    q.add_argument("path")
    q.add_argument("id", help="scan id")
    q.add_argument("--reason", default=None)
    q.set_defaults(func=_os_errors(run_remove))

    q = dsub.add_parser("stats", help="counts, index and disk use")
    q.add_argument("path")
    q.add_argument("--json", action="store_true", help="print JSON")
    q.set_defaults(func=_os_errors(run_stats))

    q = dsub.add_parser("verify", help="check that catalogue, stored files and index agree")
    q.add_argument("path")
    q.add_argument("--deep", action="store_true", help="re-read every stored file and check its hash")
    q.add_argument("--json", action="store_true", help="print JSON")
    q.set_defaults(func=_os_errors(run_verify))

    q = dsub.add_parser("rebuild", help="rebuild the FAISS index from the catalogue")
    q.add_argument("path")
    q.add_argument("--index", default=None, choices=["auto", "flat", "ivf", "ivfsq", "ivfpq", "hnsw"])
    q.add_argument("--blobs", action="store_true",
                   help="also compute the search's per-scan blobs that stored scans lack, from their surfaces")
    q.add_argument("--json", action="store_true", help="print JSON")
    q.set_defaults(func=_os_errors(run_rebuild))

    q = dsub.add_parser("migrate", help="move the database to another signature model (stage 1), from the stored "
                                        "surfaces; an interrupted migration resumes where it stopped")
    q.add_argument("path")
    q.add_argument("--model", required=True, help="target signature model: global-640 or local-sift")
    q.add_argument("--batch", type=int, default=64, help="entries committed together (progress is kept per batch)")
    q.add_argument("--json", action="store_true", help="print JSON")
    q.set_defaults(func=_os_errors(run_migrate))

    q = dsub.add_parser("recover", help="rebuild a lost or unreadable catalogue from the stored surfaces and the "
                                        "audit journal (the damaged catalogue is kept beside it)")
    q.add_argument("path")
    q.add_argument("--json", action="store_true", help="print JSON")
    q.set_defaults(func=_os_errors(run_recover))

    q = dsub.add_parser("export", help="write an exchange bundle for a partner lab (never the evidence files)")
    q.add_argument("path", help="database directory")
    q.add_argument("-o", "--output", required=True, help="the bundle to write (.zip)")
    q.add_argument("--scans", nargs="+", default=None, help="scan ids to export (default: all)")
    q.add_argument("--with-surfaces", action="store_true", help="include the extracted surfaces as x3p")
    q.add_argument("--lab", required=True, help="name of this lab (the partner files the entries under it)")
    q.add_argument("--sign-key", default=None, help="Ed25519 private key (PEM) to sign the bundle with")
    q.add_argument("--force", action="store_true", help="replace an existing bundle file")
    q.add_argument("--json", action="store_true", help="print JSON")
    q.set_defaults(func=_os_errors(run_export))

    q = dsub.add_parser("import", help="add a partner lab's exchange bundle (entries keep their lab)")
    q.add_argument("path", help="database directory")
    q.add_argument("bundle", help="the bundle (.zip)")
    q.add_argument("--public-key", default=None, help="the partner lab's public key (PEM): require its signature")
    q.add_argument("--resign", action="store_true",
                   help="recompute signatures from the bundle's surfaces if its signature model differs")
    q.add_argument("--trust-unsigned", action="store_true",
                   help="import a signed bundle without checking its signature (no --public-key)")
    q.add_argument("--json", action="store_true", help="print JSON")
    q.set_defaults(func=_os_errors(run_import))

    q = dsub.add_parser("keygen", help="create an Ed25519 key pair for signing bundles")
    q.add_argument("private", help="private key file to write (keep it private)")
    q.add_argument("public", help="public key file to write (give it to partner labs)")
    q.add_argument("--force", action="store_true", help="replace an existing public key file (never a private key)")
    q.set_defaults(func=_os_errors(run_keygen))

    p.set_defaults(func=lambda a: (p.print_help(), 1)[1])


def _os_errors(func: Any) -> Any:
    """Run a command, turning an operating-system error into one DatabaseError line (exit status 2)."""
    import functools

    @functools.wraps(func)
    def run(args: argparse.Namespace) -> int:
        from ..errors import DatabaseError

        try:
            return int(func(args))
        except OSError as exc:
            from ..errors import BallisticsError

            if isinstance(exc, BallisticsError):
                raise
            where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
            raise DatabaseError(f"{exc.strerror or exc}{where}") from exc
    return run


def _open(path: str, **kw: Any):
    from ..database import CaseDatabase

    return CaseDatabase(path, create=False, **kw)


def run_init(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..database import CaseDatabase
    from ..errors import DatabaseError

    if (Path(args.path) / "catalogue.sqlite").exists():
        raise DatabaseError(f"{args.path}: a case database exists already.")
    db = CaseDatabase(args.path, create=True, index_kind=args.index, model=getattr(args, "model", None))
    st = db.stats()
    db.close()
    if args.json:
        emit(st, True)
    else:
        print(f"created case database {args.path} (signature {st['signature_version']}, index {args.index})")
    return 0


def _prepare_one(path: str, preprocess: bool) -> Any:
    """Worker of ``db add --jobs N``: read, extract, sign, stage-2 blobs (no database access)."""
    from ..database import prepare_entry

    return prepare_entry(path, preprocess)


def _prepared(files: list[str], preprocess: bool, jobs: int) -> Iterator[tuple[str, Any, str | None]]:
    """``(file, PreparedEntry or None, error or None)`` for every file, in order.

    ``jobs <= 1``: in this process.  Otherwise the entries are computed by
    :func:`ballistics.batch.map_scans` on a local cluster of ``jobs`` worker processes
    (one thread each), a chunk of files at a time so that only a chunk of entries is
    held here; the caller, the only writer, stores them as they come.
    """
    from ..database import prepare_entry
    from ..errors import BallisticsError

    def here(path: str) -> tuple[str, Any, str | None]:
        try:
            return path, prepare_entry(path, preprocess), None
        except BallisticsError as exc:
            return path, None, f"{type(exc).__name__}: {exc}"

    if jobs <= 1 or len(files) <= 1:
        for path in files:
            yield here(path)
        return
    from functools import partial
    from pathlib import Path

    from ..batch import map_scans
    from ..batch._cluster import cluster_client

    func = partial(_prepare_one, preprocess=preprocess)
    chunk = max(16, 4 * jobs)
    with cluster_client(n_workers=min(jobs, len(files))) as client:
        for start in range(0, len(files), chunk):
            part = files[start:start + chunk]
            # map_scans refuses a missing file for the whole call: such a file fails here, alone
            present = [Path(p).is_file() for p in part]
            results = iter(map_scans(func, [p for p, ok in zip(part, present) if ok], read=False,
                                     on_error="record", client=client))
            for path, ok in zip(part, present):
                if not ok:
                    yield here(path)
                    continue
                r = next(results)
                yield path, r.value, r.error


def run_add(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..errors import BallisticsError

    db = _open(args.path)
    added: list[dict[str, str]] = []
    skipped: list[dict[str, str]] = []
    failed: list[dict[str, str]] = []

    def store(path: str, entry: Any, err: str | None) -> None:
        if err is not None:
            failed.append({"file": path, "error": err})
            return
        try:
            before = db.catalogue.scan_by_sha(entry.scan.checksum)
            sid = db.add(entry, case_id=args.case, firearm_id=args.firearm, on_duplicate="skip")
            (skipped if before is not None else added).append({"file": path, "scan_id": sid})
        except BallisticsError as exc:
            failed.append({"file": path, "error": f"{type(exc).__name__}: {exc}"})

    bar = tqdm(total=len(args.files), desc="adding", unit="scan", file=sys.stderr,
               disable=args.json and not sys.stderr.isatty())
    try:
        for path, entry, err in _prepared(list(args.files), args.preprocess, args.jobs):
            store(path, entry, err)
            bar.update()
    finally:
        bar.close()
        db.close()
    out = {"added": added, "already_stored": skipped, "failed": failed}
    if args.json:
        emit(out, True)
    else:
        for a in added:
            print(f"added    {a['scan_id']}  ({a['file']})")
        for a in skipped:
            print(f"skipped  {a['file']}: already stored as {a['scan_id']}")
        for a in failed:
            print(f"FAILED   {a['file']}: {a['error']}", file=sys.stderr)
    return 0 if not failed else 2


def _search_sources(args: argparse.Namespace, knobs: dict) -> tuple[Any, bool]:
    """The search of ``db search``: one database, or several sources (bundles) merged."""
    from pathlib import Path

    bundles = list(args.bundle)
    if bundles or Path(args.path).is_file():  # bundles: one collection of every source, hits name their source
        from ..database import MultiSearch

        database = None if Path(args.path).is_file() else args.path
        if database is None:
            bundles.insert(0, args.path)
        with MultiSearch(database, bundles, public_keys=args.public_key, trust_unsigned=args.trust_unsigned,
                         lab=args.lab) as ms:
            return ms.search(args.file, **knobs), True
    db = _open(args.path, readonly=True)
    try:
        return db.search(args.file, **knobs), False
    finally:
        db.close()


def run_search(args: argparse.Namespace) -> int:
    from .. import threads

    knobs = dict(k=args.k, preprocess=args.preprocess, rerank=args.rerank, shortlist=args.shortlist,
                 votes=args.votes, rerank_min_inliers=args.rerank_min_inliers, verify=args.verify, seed=args.seed,
                 seed_window_deg=args.seed_window, seed_min_inliers=args.seed_min_inliers)
    with threads(args.threads if args.threads is not None else 1):
        hits, multi = _search_sources(args, knobs)
    if args.timings or args.search_verbose or getattr(args, "verbose", 0):
        print(hits.format_timings(), file=sys.stderr)
    for w in hits.warnings:
        print(f"warning: {w}", file=sys.stderr)
    if args.json:
        emit({"query": args.file, **hits.to_dict()}, True)  # with parameters, version and query checksum
        return 0
    print(f"query: {args.file}")
    lab_col = f" {'lab':<14s} {'source':<24s}" if multi else ""
    print(f"{'rank':>4s}  {'scan':<24s}{lab_col} {'case':<14s} {'firearm':<12s} {'retrieval':>9s} {'inliers':>7s} "
          f"{'CMC':>4s} {'score':>8s} {'log10 LR':>8s}")
    for h in hits:
        cmc = "-" if h.cmc_count is None else str(h.cmc_count)
        sc = "-" if h.score is None else f"{h.score:.3g}"
        inl = "-" if h.inliers is None else str(h.inliers)
        llr = (h.comparison or {}).get("llr")
        lr = "-" if llr is None else f"{llr:+.2f}"
        where = f" {str(h.lab):<14.14s} {_short_source(getattr(h, 'source', '')):<24.24s}" if multi else ""
        print(f"{h.rank:>4d}  {h.scan_id:<24.24s}{where} {str(h.case_id):<14.14s} {str(h.firearm_id):<12.12s} "
              f"{h.retrieval_score:9.3f} {inl:>7s} {cmc:>4s} {sc:>8s} {lr:>8s}")
        if args.search_verbose and h.stage3:
            print(f"      stage 3: {_stage3_text(h.stage3)}")
    return 0


def _short_source(source: str) -> str:
    """``database`` or ``bundle <file name>`` of a hit's source, for the text table."""
    from pathlib import Path

    kind, _, where = source.partition(":")
    return kind if kind == "database" else f"{kind} {Path(where).name}"


def _stage3_text(s3: dict) -> str:
    """One line saying how a candidate's comparison was run (seeded window or full circle)."""
    pose = ""
    if s3.get("stage2_rotation_deg") is not None:
        pose = (f" (stage 2: {s3['stage2_inliers']} inliers, rotation {s3['stage2_rotation_deg']:.1f} deg"
                f"{', query mirrored' if s3.get('stage2_mirrored') else ''})")
    if s3.get("seeded"):
        lo, hi = s3["rotation_range"]
        text = f"seeded, rotations {lo:.0f}..{hi:.0f} deg, b {s3['handedness'].replace('_', ' ')}{pose}"
        if s3.get("fallback"):
            text += f"; {s3['fallback']}"
        return text
    return f"full circle, both handedness: {s3.get('reason')}{pose}"


def run_list(args: argparse.Namespace) -> int:
    db = _open(args.path, readonly=True)
    try:
        rows = db.list(case_id=args.case, include_removed=args.all)
    finally:
        db.close()
    if args.json:
        emit(rows, True)
        return 0
    print(f"{'scan':<24s} {'case':<14s} {'exhibit':<16s} {'firearm':<12s} {'added':<20s} sha256")
    for r in rows:
        flag = "  (removed)" if r["removed_at"] else ""
        print(f"{r['scan_id']:<24.24s} {str(r['case_id']):<14.14s} {str(r['exhibit_id']):<16.16s} "
              f"{str(r['firearm_id']):<12.12s} {r['added'][:19]:<20s} {r['sha256'][:16]}{flag}")
    print(f"{len(rows)} scan(s)")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    db = _open(args.path)
    try:
        db.remove(args.id, reason=args.reason)
    finally:
        db.close()
    print(f"removed {args.id} from searches (kept on disk; see the audit log)")
    return 0


def _call(args: argparse.Namespace, action, *, readonly: bool) -> dict[str, Any]:
    """Open the database, run ``action(db)``, close it, print the result as text or JSON."""
    db = _open(args.path, readonly=readonly)
    try:
        res = action(db)
    finally:
        db.close()
    emit(res, args.json)
    return res


def run_stats(args: argparse.Namespace) -> int:
    _call(args, lambda db: db.stats(), readonly=True)
    return 0


def run_verify(args: argparse.Namespace) -> int:
    res = _call(args, lambda db: db.verify(deep=args.deep), readonly=True)
    return 0 if res["ok"] else 1


def run_rebuild(args: argparse.Namespace) -> int:
    def act(db: Any) -> dict[str, Any]:
        out = {"index": db.rebuild_index(kind=args.index)}
        if args.blobs:
            out["blobs"] = db.rebuild_blobs()
        return out

    _call(args, act, readonly=False)
    return 0


def run_migrate(args: argparse.Namespace) -> int:
    def show(done: int, total: int) -> None:
        print(f"re-signed {done}/{total}", file=sys.stderr, flush=True)

    _call(args, lambda db: db.resign(args.model, batch=max(1, args.batch), progress=show), readonly=False)
    return 0


def run_recover(args: argparse.Namespace) -> int:
    from ..database import recover

    res = recover(args.path)
    emit(res, args.json)
    return 0 if not res["not_restored"] else 1


def run_export(args: argparse.Namespace) -> int:
    _call(args, lambda db: db.export_bundle(args.output, args.scans, include_surfaces=args.with_surfaces,
                                            lab=args.lab, sign_key=args.sign_key, force=args.force), readonly=False)
    return 0


def run_import(args: argparse.Namespace) -> int:
    _call(args, lambda db: db.import_bundle(args.bundle, public_key=args.public_key, resign=args.resign,
                                            trust_unsigned=args.trust_unsigned), readonly=False)
    return 0


def run_keygen(args: argparse.Namespace) -> int:
    from ..database import generate_signing_key

    fp = generate_signing_key(args.private, args.public, force=args.force)
    print(f"wrote {args.private} (private: keep it) and {args.public} (public: share it); fingerprint {fp}")
    return 0
