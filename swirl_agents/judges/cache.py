"""A persistent judgement cache, so that reruns and resumed runs never pay for a verdict twice.

One SQLite row per judgement, keyed by the SHA-256 of the judge's name, its
signature (prompt template and settings), the kind of question and the query's
fields. Unparseable verdicts are cached too (``good`` NULL): asking the same
deterministic judge again would give the same unreadable text, and the count of
them is part of the record. Each batch is committed in one transaction, so a crash
loses at most the batch in flight, never a half-written row.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TypeVar

from swirl_agents.judges.base import Judge, Judgement, OutcomeQuery, ProcessQuery

Query = TypeVar("Query", ProcessQuery, OutcomeQuery)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS judgements (
    key TEXT PRIMARY KEY,
    judge TEXT NOT NULL,
    kind TEXT NOT NULL,
    good INTEGER,
    score REAL,
    raw TEXT NOT NULL
)
"""
_LOOKUP_CHUNK = 500  # stays under SQLite's limit on bound parameters per statement


def judgement_key(judge: str, signature: str, kind: str, query: ProcessQuery | OutcomeQuery) -> str:
    """The cache key: SHA-256 over the judge, its signature, the kind and the query's fields."""
    fields = asdict(query)
    if isinstance(query, OutcomeQuery):
        fields["answers"] = list(query.answers)
    payload = json.dumps(
        {"judge": judge, "signature": signature, "kind": kind, "query": fields},
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class JudgementCache:
    """Judgements stored in a SQLite file (or ``":memory:"``), with hit and miss counters.

    Args:
        path: The database file; created with its parent folder if missing.

    Attributes:
        hits: Queries answered from the cache since it was opened.
        misses: Queries the cache could not answer (each one asked of a judge).
    """

    def __init__(self, path: str | Path):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._connection = sqlite3.connect(self.path, timeout=60)
            # WAL lets a second process read (or wait to write) while one run writes.
            self._connection.execute("PRAGMA journal_mode=WAL")
            self._connection.execute(_SCHEMA)
            self._connection.commit()
        except sqlite3.DatabaseError as error:
            raise ValueError(f"{self.path}: not a usable judgement cache ({error})") from error
        self.hits = 0
        self.misses = 0

    def get_many(self, keys: Sequence[str]) -> dict[str, Judgement]:
        """The cached judgements among ``keys`` (missing keys are simply absent)."""
        found: dict[str, Judgement] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), _LOOKUP_CHUNK):
            chunk = unique[start : start + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._connection.execute(
                f"SELECT key, judge, good, score, raw FROM judgements WHERE key IN ({marks})", chunk
            )
            for key, judge, good, score, raw in rows:
                found[key] = Judgement(None if good is None else bool(good), score, raw, judge)
        return found

    def put_many(self, items: Sequence[tuple[str, str, Judgement]]) -> None:
        """Store ``(key, kind, judgement)`` triples in one transaction."""
        rows = [
            (key, j.judge, kind, None if j.good is None else int(j.good), j.score, j.raw)
            for key, kind, j in items
        ]
        with self._connection:
            self._connection.executemany(
                "INSERT OR REPLACE INTO judgements VALUES (?, ?, ?, ?, ?, ?)", rows
            )

    def __len__(self) -> int:
        return self._connection.execute("SELECT COUNT(*) FROM judgements").fetchone()[0]

    def unparseable(self) -> int:
        """How many cached judgements hold no verdict."""
        row = self._connection.execute("SELECT COUNT(*) FROM judgements WHERE good IS NULL")
        return row.fetchone()[0]

    def close(self) -> None:
        """Close the database (everything is already committed)."""
        self._connection.close()

    def __enter__(self) -> JudgementCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class CachedJudge:
    """A judge that asks ``cache`` first and its inner ``judge`` only for what is missing.

    Queries repeated within one batch are judged once. The wrapper has the inner
    judge's ``name`` and ``signature``, so it can stand wherever the judge stands.
    """

    def __init__(self, judge: Judge, cache: JudgementCache):
        self.judge = judge
        self.cache = cache
        self.name = judge.name

    def signature(self, kind: str) -> str:
        """The inner judge's signature."""
        return self.judge.signature(kind)

    def judge_process(self, queries: Sequence[ProcessQuery]) -> list[Judgement]:
        """Judge steps, answering from the cache where it can."""
        return self._judge("process", queries, self.judge.judge_process)

    def judge_outcome(self, queries: Sequence[OutcomeQuery]) -> list[Judgement]:
        """Judge final answers, answering from the cache where it can."""
        return self._judge("outcome", queries, self.judge.judge_outcome)

    def _judge(
        self,
        kind: str,
        queries: Sequence[Query],
        judge: Callable[[Sequence[Query]], list[Judgement]],
    ) -> list[Judgement]:
        signature = self.judge.signature(kind)
        keys = [judgement_key(self.name, signature, kind, query) for query in queries]
        known = self.cache.get_many(keys)
        pairs = zip(keys, queries, strict=True)
        missing = {key: query for key, query in pairs if key not in known}
        self.cache.hits += len(queries) - len(missing)
        self.cache.misses += len(missing)
        if missing:
            fresh = judge(list(missing.values()))
            if len(fresh) != len(missing):
                raise RuntimeError(
                    f"judge {self.name!r} gave {len(fresh)} judgements for {len(missing)} queries"
                )
            self.cache.put_many([(key, kind, j) for key, j in zip(missing, fresh, strict=True)])
            known.update(zip(missing, fresh, strict=True))
        return [known[key] for key in keys]
