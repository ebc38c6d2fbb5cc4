"""The knowledge base in SQLite FTS5: BM25 ranking, no model needed.

``sync`` brings the index in line with the article folder: a file whose size and mtime are
unchanged is skipped without reading it, a changed one is re-hashed and re-indexed only when
its content changed, a deleted one is dropped. FTS5's porter tokenizer folds "charged",
"charges" and "charge" into one term, so a caller need not say the article's exact word form.

Several processes may open the same file (workers, parallel replays): the first sync of a large
knowledge base writes for seconds, so others wait for it (a 60 s busy timeout) rather than fail.
One ``KnowledgeIndex`` may be used from several threads (calls search from executor threads):
a lock serializes access to its one connection; a suggestion (two searches) takes ~3 ms on the
sample knowledge base and ~50 ms on 2,000 articles (benchmarks/bench_kb.py).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from assist.articles import Article, ArticleError, article_files, read_article

SCHEMA = """
CREATE TABLE IF NOT EXISTS kb_files (
    id TEXT PRIMARY KEY, path TEXT NOT NULL, mtime_ns INTEGER NOT NULL, size INTEGER NOT NULL,
    sha256 TEXT NOT NULL, title TEXT NOT NULL, queues TEXT NOT NULL, body TEXT NOT NULL
);
CREATE VIRTUAL TABLE IF NOT EXISTS kb_fts USING fts5(
    id UNINDEXED, title, tags, body, tokenize = 'porter unicode61'
);
"""

TITLE_WEIGHT = 4.0
TAGS_WEIGHT = 3.0
BODY_WEIGHT = 1.0
"""BM25 column weights: a caller's words found in the title or the tags (what callers say about
the topic) count more than the same words in the body (measured on the sample questions)."""


@dataclass(frozen=True, slots=True)
class Hit:
    """One article found for a query, best first; ``score`` is BM25 (higher: better) times the
    queue boost; ``matched``: the query's terms found in the article."""

    id: str
    title: str
    score: float
    matched: tuple[str, ...]
    body: str = ""


@dataclass
class SyncReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)


class KnowledgeIndex:
    """An FTS5 index of one knowledge base folder, in one SQLite file."""

    def __init__(self, db_path: Path | str) -> None:
        self.db_path = Path(db_path) if str(db_path) != ":memory:" else db_path
        if isinstance(self.db_path, Path):
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(db_path), check_same_thread=False, timeout=60.0)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(SCHEMA)
            self._db.commit()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> KnowledgeIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM kb_files").fetchone()[0])

    def sync(self, kb_dir: Path) -> SyncReport:
        """Index new and changed articles of ``kb_dir``, drop deleted ones. Raises
        :class:`ArticleError` on a bad file (nothing is changed then)."""
        report = SyncReport()
        with self._lock:
            known = {row[0]: row[1:] for row in self._db.execute(
                "SELECT id, path, mtime_ns, size, sha256 FROM kb_files")}
        changed: list[tuple[Article, int, int]] = []
        seen: dict[str, Path] = {}
        for path in article_files(kb_dir):
            st = path.stat()
            art_id = path.stem
            if art_id in seen:
                raise ArticleError(f"{path}: article id {art_id!r} is also {seen[art_id]}")
            seen[art_id] = path
            old = known.get(art_id)
            if old is not None and old[0] == str(path) and old[1] == st.st_mtime_ns and old[2] == st.st_size:
                report.unchanged += 1
                continue
            article = read_article(path)
            if old is not None and old[3] == article.sha256:
                report.unchanged += 1  # touched, not changed: remember the new mtime only
            changed.append((article, st.st_mtime_ns, st.st_size))
        with self._lock, self._db:
            for article, mtime_ns, size in changed:
                old = known.get(article.id)
                if old is not None and old[3] != article.sha256:
                    report.updated.append(article.id)
                elif old is None:
                    report.added.append(article.id)
                self._db.execute("DELETE FROM kb_fts WHERE id = ?", (article.id,))
                self._db.execute(
                    "INSERT OR REPLACE INTO kb_files VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (article.id, str(article.path), mtime_ns, size, article.sha256, article.title,
                     " ".join(article.queues), article.body))
                self._db.execute("INSERT INTO kb_fts (id, title, tags, body) VALUES (?, ?, ?, ?)",
                                 (article.id, article.title, " ; ".join(article.tags), article.body))
            for gone in sorted(set(known) - set(seen)):
                self._db.execute("DELETE FROM kb_fts WHERE id = ?", (gone,))
                self._db.execute("DELETE FROM kb_files WHERE id = ?", (gone,))
                report.removed.append(gone)
        return report

    def search(self, terms: Sequence[str], *, queue: str | None = None, limit: int = 3,
               queue_boost: float = 0.3, with_body: bool = False) -> list[Hit]:
        """Articles for any of ``terms`` (already cleaned: ``assist.query``), best first.
        An article listed for ``queue`` has its score multiplied by ``1 + queue_boost``."""
        terms = [t for t in dict.fromkeys(terms) if t]
        if not terms:
            return []
        match = " OR ".join(_quote(t) for t in terms)
        with self._lock:
            rows = self._db.execute(
                "SELECT f.id, f.title, f.queues, f.body, -bm25(kb_fts, 0.0, ?, ?, ?) AS s, kb_fts.rowid "
                "FROM kb_fts JOIN kb_files f ON f.id = kb_fts.id WHERE kb_fts MATCH ? "
                "ORDER BY s DESC LIMIT ?",
                (TITLE_WEIGHT, TAGS_WEIGHT, BODY_WEIGHT, match, max(limit * 4, 12))).fetchall()
            scored = sorted(
                ((row, row[4] * (1.0 + queue_boost) if queue and queue in row[2].split() else row[4])
                 for row in rows), key=lambda rs: rs[1], reverse=True)[:limit]
            hits = []
            for (art_id, title, _queues, body, _s, rowid), score in scored:
                matched = tuple(t for t in terms if self._db.execute(  # rowid: a direct lookup
                    "SELECT 1 FROM kb_fts WHERE kb_fts MATCH ? AND rowid = ?",
                    (_quote(t), rowid)).fetchone())
                hits.append(Hit(art_id, title, round(score, 3), matched, body if with_body else ""))
        return hits


def _quote(term: str) -> str:
    """An FTS5 string literal: the term is searched as a word, never parsed as query syntax."""
    return '"' + term.replace('"', '""') + '"'
