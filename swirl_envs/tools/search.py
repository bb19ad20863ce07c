"""The search tool: BM25 over the question's own paragraphs, a whole split, or a user corpus.

Three corpora (``make_search_tool``'s ``search`` argument):

- ``"distractor"``: each question's own paragraphs (a handful). The index is
  built per task on first use (well under a millisecond) and cached; it uses
  Lucene's non-negative IDF, because Okapi's is zero or floored for any word in
  more than half of ten paragraphs.
- ``"open"``: the union of every task's paragraphs, deduplicated; one index per
  process, shared by every env that asks for the same corpus.
- a path: a saved index directory (memory-mapped) or a JSONL file of passages.

Whatever the corpus, a passage whose title equals the query (ignoring case,
accents, punctuation and spacing) comes first: a query that names a paragraph's
title finds it. Several passages may share a title (MuSiQue); among them, BM25
decides.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from swirl_envs.task import Passage, Task
from swirl_envs.tools.base import Tool, ToolResult
from swirl_envs.tools.bm25 import BM25Index, Hit, Retriever
from swirl_envs.tools.index_store import IndexFormatError
from swirl_envs.tools.tokenize import (
    ENGLISH_STOPWORDS,
    Tokenizer,
    WordTokenizer,
    default_tokenizer,
    normalize_title,
)

__all__ = [
    "ENGLISH_STOPWORDS",
    "BM25Index",
    "Hit",
    "IndexFormatError",
    "Retriever",
    "SearchTool",
    "Tokenizer",
    "WordTokenizer",
    "dedupe_passages",
    "default_tokenizer",
    "load_corpus",
    "make_search_tool",
    "normalize_title",
    "shared_index",
]

NO_RESULTS = "No results."
_SHARED_INDEXES: dict[str, BM25Index] = {}


class SearchTool(Tool):
    """Search passages with BM25 and show the top ``k`` as ``Title: text``.

    Args:
        corpus: ``"distractor"`` (an index per task over ``task.passages``) or a
            ``Retriever`` shared by all tasks.
        k: Passages shown per query.
        max_chars: Each passage (``Title: text``) is cut to this many characters.
        tokenizer: Tokeniser of the per-task indexes (a shared retriever has its own).
        cache_size: Per-task indexes kept (least recently used are dropped).
    """

    name = "search"
    tag = "search_query"
    argument = "query"
    description = "Search the paragraphs for a query; returns the best matches as 'Title: text'."
    argument_description = "Keywords, a question, or the exact title of a paragraph."

    def __init__(
        self,
        corpus: Literal["distractor"] | Retriever,
        *,
        k: int = 1,
        max_chars: int = 500,
        tokenizer: Tokenizer = default_tokenizer,
        cache_size: int = 4096,
    ):
        if not (corpus == "distractor" or isinstance(corpus, Retriever)):
            raise ValueError(f"corpus must be 'distractor' or a Retriever, got {corpus!r}.")
        if k < 1 or max_chars < 1:
            raise ValueError(
                f"k and max_chars must be at least 1, got k={k}, max_chars={max_chars}."
            )
        self.corpus = corpus
        self.k = k
        self.max_chars = max_chars
        self.tokenizer = tokenizer
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[Passage, ...], BM25Index] = OrderedDict()

    def __call__(self, query: str, task: Task) -> ToolResult:
        """Search for ``query`` in ``task``'s corpus."""
        return self.call_many([(query, task)])[0]

    def call_many(self, calls: Sequence[tuple[str, Task]]) -> list[ToolResult]:
        """Serve many ``(query, task)`` calls at once; a shared retriever gets them as one batch."""
        ranked = self.rank_many(calls)
        return [self._result(query, hits) for (query, _), hits in zip(calls, ranked, strict=True)]

    def rank(self, query: str, task: Task) -> list[Hit]:
        """The (up to ``k``) hits this tool shows for ``query`` on ``task``, in order."""
        return self.rank_many([(query, task)])[0]

    def rank_many(self, calls: Sequence[tuple[str, Task]]) -> list[list[Hit]]:
        """The hits shown for each ``(query, task)``: exact titles first, then BM25."""
        if isinstance(self.corpus, Retriever):
            queries = [query for query, _ in calls]
            batch = self.corpus.search_many(queries, self.k)
            return [
                self._title_first(self.corpus, query, hits)
                for query, hits in zip(queries, batch, strict=True)
            ]
        ranked = []
        for query, task in calls:
            index = self._task_index(task)
            hits = [] if index is None else index.search(query, self.k)
            ranked.append(hits if index is None else self._title_first(index, query, hits))
        return ranked

    def _title_first(self, retriever: Retriever, query: str, hits: list[Hit]) -> list[Hit]:
        titled = retriever.title_hits(query)
        seen = {hit.index for hit in titled}
        return (titled + [hit for hit in hits if hit.index not in seen])[: self.k]

    def _result(self, query: str, hits: list[Hit]) -> ToolResult:
        if not query.strip():
            return ToolResult("Error: the search query is empty.", ok=False)
        if not hits:
            return ToolResult(NO_RESULTS)
        return ToolResult("\n\n".join(self._show(hit.passage) for hit in hits))

    def _show(self, passage: Passage) -> str:
        shown = f"{passage.title}: {passage.text}" if passage.title else passage.text
        return shown if len(shown) <= self.max_chars else shown[: self.max_chars - 1] + "…"

    def _task_index(self, task: Task) -> BM25Index | None:
        key = task.passages
        if not key:
            return None
        index = self._cache.get(key)
        if index is None:
            index = BM25Index(key, tokenizer=self.tokenizer, idf="lucene")
            self._cache[key] = index
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return index

    def __getstate__(self) -> dict[str, Any]:
        # Per-task indexes are cheap to rebuild; dropping them keeps pickles small.
        state = self.__dict__.copy()
        state["_cache"] = OrderedDict()
        return state


def load_corpus(path: str | os.PathLike) -> list[Passage]:
    """Read passages from JSONL (``title``, ``text``, optional ``id``), dropping exact duplicates.

    Raises:
        ValueError: A line is not a JSON object with string ``title`` and ``text``;
            the message names the file and line.
    """
    passages: list[Passage] = []
    with open(path, encoding="utf-8") as file:
        for number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}, line {number}: not valid JSON ({error}).") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}, line {number}: expected a JSON object.")
            title, text, key = record.get("title"), record.get("text"), record.get("id", "")
            if not isinstance(title, str) or not isinstance(text, str):
                raise ValueError(f"{path}, line {number}: 'title' and 'text' must be strings.")
            if not isinstance(key, (str, int)):
                raise ValueError(f"{path}, line {number}: 'id' must be a string or an integer.")
            passages.append(Passage(title, text, str(key)))
    return dedupe_passages(passages)


def make_search_tool(
    search: str, tasks: Sequence[Task], *, k: int = 1, max_chars: int = 500
) -> SearchTool:
    """Build the search tool for an env.

    Args:
        search: ``"distractor"``, ``"open"``, or a path to a saved index directory
            or a JSONL corpus.
        tasks: The env's tasks (their passages make the ``"open"`` corpus).
        k: Passages shown per query.
        max_chars: Characters shown per passage.

    Raises:
        ValueError: ``search`` is none of the above, or its corpus is empty or corrupt.
    """
    if search == "distractor":
        return SearchTool("distractor", k=k, max_chars=max_chars)
    if search == "open":
        corpus = dedupe_passages(p for task in tasks for p in task.passages)
        if not corpus:
            raise ValueError("The 'open' setting needs tasks with passages; these have none.")
        return SearchTool(shared_index(corpus), k=k, max_chars=max_chars)
    path = Path(search)
    if path.is_dir():
        return SearchTool(BM25Index.load(path, mmap=True), k=k, max_chars=max_chars)
    if path.is_file():
        corpus = load_corpus(path)
        if not corpus:
            raise ValueError(f"{path} holds no passages.")
        return SearchTool(shared_index(corpus), k=k, max_chars=max_chars)
    raise ValueError(
        f"search must be 'distractor', 'open', or the path of a saved index directory or a "
        f"JSONL corpus; {search!r} is none of these."
    )


def dedupe_passages(passages: Iterable[Passage]) -> list[Passage]:
    """Keep the first of passages with identical title and text."""
    unique: dict[tuple[str, str], Passage] = {}
    for passage in passages:
        unique.setdefault((passage.title, passage.text), passage)
    return list(unique.values())


def shared_index(passages: Sequence[Passage]) -> BM25Index:
    """A default ``BM25Index`` over ``passages``, built once per process for the same content."""
    digest = hashlib.sha256()
    for passage in passages:
        for field in (passage.title, passage.text, passage.id):
            digest.update(field.encode("utf-8", "surrogatepass"))
            digest.update(b"\0")
    key = digest.hexdigest()
    if key not in _SHARED_INDEXES:
        _SHARED_INDEXES[key] = BM25Index(passages)
    return _SHARED_INDEXES[key]
