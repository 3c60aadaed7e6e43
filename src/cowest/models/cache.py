"""SQLite call cache: every model call is stored, so a re-run of a finished recipe makes zero model calls.

Key = sha256 of canonical JSON of {identity, messages, sampling.key(), index}, where
`identity` is the backend's identity (backend, model, weights/adapter hash) and `index` the sample number 0..n-1.

Sample indices and seeds: a call for `n` samples with seed `s` stores the inner backend's j-th completion as index j.
When only some indices are cached (say 0..m-1 from an earlier run with n=m), the inner backend is asked for the
missing `n - m` samples with seed `s + m`, and its j-th completion is stored as index `m + j`. So index i is always
the draw "seed s + i" on backends that draw sample i with seed + i (OpenAIBackend in its one-request-per-sample mode),
and on every backend new samples are never replays of the cached ones (a fresh seed, not seed `s` again). A fresh
run (nothing cached) calls the inner backend with exactly the caller's `n` and seed.

Durability: each conversation's completions are committed as soon as the inner backend finishes it (through the
`on_done` callback of BaseBackend.generate), so a failed batch or a killed process loses no finished call. An empty
text is never stored: it is not an answer, and the next run asks again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from cowest import dist
from cowest.models.base import Backend, BackendError, BaseBackend, Completion, Conversation, OnDone, Sampling

from ..errors import CowestError

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS completions (
    key TEXT PRIMARY KEY,
    identity TEXT NOT NULL,
    text TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    finish_reason TEXT,
    created REAL NOT NULL
) WITHOUT ROWID;
"""
_CHUNK = 500  # keys per SELECT: well under SQLite's bound-parameter limit
# A 0-byte file older than this, with no WAL beside it, was emptied (truncated, a full disk): not one that another
# process is creating at this moment, which is 0 bytes too until its first write.
_STALE_EMPTY_S = 5.0

log = logging.getLogger(__name__)


class CacheError(CowestError, RuntimeError):
    """The cache file cannot be used (not SQLite, corrupt, locked, or from another schema version)."""


def _warn_if_emptied(path: Path) -> None:
    """Say so when the cache file is there but empty: SQLite would take it as a fresh cache without a word."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return
    wal = path.with_name(path.name + "-wal")
    if st.st_size == 0 and not wal.exists() and time.time() - st.st_mtime > _STALE_EMPTY_S:
        log.warning("%s: the call cache file is empty (0 bytes), so every call is made again into a fresh cache; "
                    "if it held answers, restore it from a copy", path)


def cache_key(identity: str, messages: Conversation, sampling: Sampling, index: int) -> str:
    """sha256 hex of the canonical JSON of (backend identity, messages, sampling params, sample index)."""
    payload = {"identity": identity, "messages": [dict(m) for m in messages], "sampling": sampling.key(),
               "index": index}
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class CallCache:
    """A SQLite file of completions keyed by `cache_key`; safe for several processes writing at once (WAL).

    One connection per instance, usable from several threads; open one instance per process (never share one
    across fork).
    """

    def __init__(self, path: str | Path, timeout_s: float = 60.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        _warn_if_emptied(self.path)  # before connecting: once connected, this process cannot tell
        try:
            with self._errors():
                # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, so writers queue on busy_timeout up front
                self._conn = sqlite3.connect(
                    self.path, timeout=timeout_s, isolation_level=None, check_same_thread=False
                )
                self._conn.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
                _set_wal(self._conn, timeout_s)
                self._conn.execute("PRAGMA synchronous = NORMAL")  # with WAL: safe against process crashes
                with self._transaction() as c:
                    for statement in _SCHEMA.split(";"):  # not executescript: it would COMMIT our transaction
                        if statement.strip():
                            c.execute(statement)
                    row = c.execute("SELECT version FROM schema_version").fetchone()
                    if row is None:
                        c.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
                    elif row[0] != SCHEMA_VERSION:
                        raise CacheError(
                            f"{self.path}: call cache schema version {row[0]}, this cowest uses {SCHEMA_VERSION}; "
                            f"delete the file to start a fresh cache"
                        )
        except BaseException:
            self.close()
            raise

    # -- plumbing ------------------------------------------------------------------------------------------------

    def _errors(self) -> "_ErrorTranslator":
        return _ErrorTranslator(self.path)

    def _transaction(self) -> "_Transaction":
        assert self._conn is not None, "cache is closed"
        return _Transaction(self._conn)

    # -- API -----------------------------------------------------------------------------------------------------

    def get_many(self, keys: Sequence[str]) -> dict[str, Completion]:
        """Cached completions for those of `keys` that are present (marked `cached=True`)."""
        found: dict[str, Completion] = {}
        unique = list(dict.fromkeys(keys))
        with self._lock, self._errors():
            assert self._conn is not None, "cache is closed"
            for i in range(0, len(unique), _CHUNK):
                chunk = unique[i : i + _CHUNK]
                rows = self._conn.execute(
                    "SELECT key, text, prompt_tokens, completion_tokens, finish_reason FROM completions "
                    f"WHERE key IN ({','.join('?' * len(chunk))})",
                    chunk,
                ).fetchall()
                for key, text, pt, ct, fr in rows:
                    found[key] = Completion(text, pt, ct, fr, cached=True)
        return found

    def put_many(self, rows: Iterable[tuple[str, str, Completion]]) -> None:
        """Store (key, identity, completion) rows in one transaction; an existing key keeps its first value.

        Rows with empty text are skipped: an empty reply is a fault, and caching it would make it permanent.
        """
        now = time.time()
        data = [(k, ident, c.text, c.prompt_tokens, c.completion_tokens, c.finish_reason, now)
                for k, ident, c in rows if c.text]
        if not data:
            return
        with self._lock, self._errors(), self._transaction() as c:
            c.executemany("INSERT OR IGNORE INTO completions VALUES (?, ?, ?, ?, ?, ?, ?)", data)

    def __len__(self) -> int:
        with self._lock, self._errors():
            assert self._conn is not None, "cache is closed"
            return self._conn.execute("SELECT COUNT(*) FROM completions").fetchone()[0]

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> "CallCache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _set_wal(conn: sqlite3.Connection, timeout_s: float) -> None:
    """Switch to WAL; processes opening a new file at once get SQLITE_BUSY here without the busy handler: retry."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on error."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: Any, *_: object) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")


class _ErrorTranslator:
    """Turn sqlite3 errors into a CacheError that names the file and says what to do."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: object) -> None:
        if not isinstance(exc, sqlite3.Error):
            return
        name = getattr(exc, "sqlite_errorname", "")
        if name in ("SQLITE_NOTADB", "SQLITE_CORRUPT") or "not a database" in str(exc) or "malformed" in str(exc):
            raise CacheError(
                f"{self.path}: not a usable SQLite call cache ({exc}); delete this file to start a fresh cache "
                f"(it only holds cached model outputs)"
            ) from exc
        if name.startswith("SQLITE_BUSY") or name.startswith("SQLITE_LOCKED"):
            raise CacheError(f"{self.path}: call cache stayed locked by another process ({exc})") from exc
        raise CacheError(f"{self.path}: call cache error: {exc}") from exc


class CachedBackend(BaseBackend):
    """Any Backend behind a CallCache: only cache misses reach the inner backend (see the module doc for seeds).

    Other attributes (e.g. HFBackend.logprobs_of_options) are forwarded to the inner backend, uncached.
    """

    def __init__(self, inner: Backend, cache: CallCache, chunk_size: int = 256) -> None:
        super().__init__()
        self.inner = inner
        self.cache = cache
        # conversations per inner call (each finished one is saved at once; this bounds a plain Backend's losses)
        self.chunk_size = chunk_size
        # several processes share the file: the main one writes (after it a barrier lets the others read)
        self.writes = dist.is_main()

    @property
    def identity(self) -> str:
        """The inner backend's identity (read live: a wrapper may set it after construction)."""
        return self.inner.identity

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not yet set (e.g. during unpickling): avoid infinite recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    streams_results = True  # cached conversations are reported at once, the others as the inner backend ends each

    def _generate(
        self, conversations: Sequence[Conversation], n: int, sampling: Sampling, on_done: OnDone | None = None
    ) -> list[list[Completion]]:
        """Cached completions where present; one inner call per group of conversations missing the same indices."""
        identity = self.identity
        keys = [[cache_key(identity, conv, sampling, i) for i in range(n)] for conv in conversations]
        found = self.cache.get_many([k for ks in keys for k in ks])
        results: list[list[Completion | None]] = [[found.get(k) for k in ks] for ks in keys]
        reported: set[int] = set()

        def report(i: int) -> None:
            if on_done is not None and i not in reported and all(c is not None for c in results[i]):
                reported.add(i)
                on_done(i, [c for c in results[i] if c is not None])

        # group by the first missing index: each group needs samples first..n-1 drawn with seed + first
        groups: dict[int, list[int]] = {}
        for i, row in enumerate(results):
            first = next((j for j, c in enumerate(row) if c is None), None)
            if first is None:
                report(i)
            else:
                groups.setdefault(first, []).append(i)
        for first, members in sorted(groups.items()):
            # Identical requests in one batch are generated once: same key, same answer (and servers that batch
            # requests are not bit-for-bit deterministic, which would otherwise give two answers to one key).
            reps: dict[str, int] = {}
            copies: dict[int, list[int]] = {}  # representative -> the identical requests it answers
            for i in members:
                rep = reps.setdefault(keys[i][first], i)
                if rep != i:
                    copies.setdefault(rep, []).append(i)
            unique = list(reps.values())
            shifted = replace(sampling, seed=sampling.seed + first)

            def settle(rep: int, first: int = first, copies: dict[int, list[int]] = copies) -> None:
                for i in copies.get(rep, []):
                    for j in range(first, n):
                        if results[i][j] is None and results[rep][j] is not None:
                            results[i][j] = replace(results[rep][j], cached=True)
                for i in (rep, *copies.get(rep, [])):
                    report(i)

            for s in range(0, len(unique), self.chunk_size):
                chunk = unique[s : s + self.chunk_size]
                store = self._store(chunk, first, keys, results, settle)
                batch = [conversations[i] for i in chunk]
                if isinstance(self.inner, BaseBackend):
                    self.inner.generate(batch, n - first, shifted, on_done=store)
                else:  # a plain Backend: no callback, so the chunk is committed when it returns
                    for pos, comps in enumerate(self.inner.generate(batch, n - first, shifted)):
                        store(pos, comps)

        final: list[list[Completion]] = []
        for row in results:
            done = [c for c in row if c is not None]
            if len(done) < n:
                raise BackendError(f"{identity}: inner backend returned {len(done)} of {n} completions")
            final.append(done)
        return final

    def _store(
        self, chunk: list[int], first: int, keys: list[list[str]], results: list[list[Completion | None]],
        then: Callable[[int], None],
    ) -> OnDone:
        """The callback that commits the completions of `chunk[pos]` (samples first..) the moment they arrive."""
        identity = self.identity

        def on_done(pos: int, comps: list[Completion]) -> None:
            i, rows = chunk[pos], []
            for j, c in enumerate(comps):
                if results[i][first + j] is None:  # a cached index (gap after a miss) keeps its value
                    results[i][first + j] = replace(c, cached=False)
                    rows.append((keys[i][first + j], identity, c))
            if self.writes:
                self.cache.put_many(rows)
            then(i)

        return on_done

    def close(self) -> None:
        """Close the inner backend and the cache."""
        try:
            self.inner.close()
        finally:
            self.cache.close()


def uncached(backend: Backend) -> Backend:
    """The model behind a call cache (the backend itself when it has none): its answers are neither read nor kept."""
    return backend.inner if isinstance(backend, CachedBackend) else backend


def read_only(backend: Backend) -> Backend:
    """Make a cached backend read its cache without adding to it (a served run keeps its cache as the run left it)."""
    if isinstance(backend, CachedBackend):
        backend.writes = False
    return backend
