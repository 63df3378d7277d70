"""The SQL schema of the catalogue and the migration of older catalogues."""

from __future__ import annotations

import sqlite3

from ._audit import GENESIS, audit_hash

__all__ = ["SCHEMA", "SCHEMA_VERSION", "migrate"]

SCHEMA_VERSION = 3

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cases (case_id TEXT PRIMARY KEY, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS firearms (firearm_id TEXT PRIMARY KEY, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS exhibits (
    exhibit_id TEXT PRIMARY KEY, case_id TEXT REFERENCES cases(case_id),
    firearm_id TEXT REFERENCES firearms(firearm_id), created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS scans (
    num INTEGER PRIMARY KEY AUTOINCREMENT,
    scan_id TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    case_id TEXT REFERENCES cases(case_id),
    exhibit_id TEXT,
    firearm_id TEXT,
    added TEXT NOT NULL,
    removed_at TEXT,
    preprocess INTEGER NOT NULL,
    source TEXT, source_sha256 TEXT,
    shape TEXT, spacing TEXT,
    metadata TEXT, provenance TEXT,
    origin_lab TEXT, origin_scan_id TEXT);
CREATE UNIQUE INDEX IF NOT EXISTS scans_live_id ON scans(scan_id) WHERE removed_at IS NULL;
CREATE UNIQUE INDEX IF NOT EXISTS scans_live_sha ON scans(sha256) WHERE removed_at IS NULL;
CREATE INDEX IF NOT EXISTS scans_case ON scans(case_id);
CREATE TABLE IF NOT EXISTS files (
    num INTEGER NOT NULL REFERENCES scans(num), role TEXT NOT NULL,
    sha256 TEXT NOT NULL, path TEXT NOT NULL, PRIMARY KEY (num, role));
CREATE TABLE IF NOT EXISTS signatures (
    num INTEGER NOT NULL REFERENCES scans(num), part TEXT NOT NULL,
    version TEXT NOT NULL, dim INTEGER NOT NULL, vector BLOB NOT NULL,
    PRIMARY KEY (num, part));
CREATE TABLE IF NOT EXISTS parameters (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, action TEXT NOT NULL,
    scan_id TEXT, parameters TEXT, library_version TEXT NOT NULL,
    prev_hash TEXT, hash TEXT);
CREATE TABLE IF NOT EXISTS blobs (
    num INTEGER NOT NULL REFERENCES scans(num), name TEXT NOT NULL,
    sha256 TEXT NOT NULL, data BLOB NOT NULL, PRIMARY KEY (num, name));
"""


def migrate(con: sqlite3.Connection) -> None:
    """Bring an older catalogue up to :data:`SCHEMA_VERSION` (adds tables and columns), in one transaction."""
    con.execute("BEGIN IMMEDIATE")
    try:
        cols = {r[1] for r in con.execute("PRAGMA table_info(audit)")}
        for c in ("prev_hash", "hash"):
            if c not in cols:
                con.execute(f"ALTER TABLE audit ADD COLUMN {c} TEXT")
        scols = {r[1] for r in con.execute("PRAGMA table_info(scans)")}
        for c in ("origin_lab", "origin_scan_id"):
            if c not in scols:
                con.execute(f"ALTER TABLE scans ADD COLUMN {c} TEXT")
        con.execute("CREATE TABLE IF NOT EXISTS blobs (num INTEGER NOT NULL REFERENCES scans(num), "
                    "name TEXT NOT NULL, sha256 TEXT NOT NULL, data BLOB NOT NULL, PRIMARY KEY (num, name))")
        # entries written before the chain existed are sealed into it now, in their order
        prev = GENESIS
        for r in con.execute("SELECT id, time, action, scan_id, parameters, library_version, hash "
                             "FROM audit ORDER BY id").fetchall():
            if r[6] is None:
                h = audit_hash(r[0], r[1], r[2], r[3], r[4], r[5], prev)
                con.execute("UPDATE audit SET prev_hash=?, hash=? WHERE id=?", (prev, h, r[0]))
                prev = h
            else:
                prev = r[6]
            last = r[0]
        put = "INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value"
        if prev != GENESIS:
            con.execute(put, ("audit_head", f"{last}:{prev}"))
        con.execute(put, ("schema_version", str(SCHEMA_VERSION)))
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
