"""BM25 retrieval over a sparse term-document matrix, ranking as ``rank_bm25`` does.

The index stores, for every term, its postings: the passages that contain it
and the term's full BM25 contribution to each, ``idf * tf * (k1 + 1) / (tf + k1 *
(1 - b + b * dl / avgdl))``, computed once at build time (a CSC matrix with one
column per term). A query is then a sparse sum of a few columns followed by a
top-k selection, with no per-passage Python work, which is what makes it
hundreds of times faster than ``rank_bm25`` while giving the same scores.

Two IDFs:

- ``"okapi"`` (default): ``log(N - n + 0.5) - log(n + 0.5)``, with negative values
  replaced by ``epsilon`` times the mean IDF, exactly as ``rank_bm25.BM25Okapi``.
  Right for large corpora; in a corpus of ten passages, any word in more than
  half of them gets a zero or floored weight.
- ``"lucene"``: ``log(1 + (N - n + 0.5) / (n + 0.5))``, never negative. Right for
  tiny per-question corpora.

Ranking rule: passages with a positive score, best first, equal scores in
passage order. (``rank_bm25`` also returns zero-score passages and breaks ties
arbitrarily.)
"""

from __future__ import annotations

import array
import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import scipy.sparse

from swirl_envs.task import Passage
from swirl_envs.tools.index_store import (
    IndexFormatError,
    PassageTable,
    StringTable,
    load_arrays,
    save_arrays,
)
from swirl_envs.tools.retriever import Hit, Retriever
from swirl_envs.tools.tokenize import Tokenizer, default_tokenizer, normalize_title, tokenizer_name

FORMAT_VERSION = 1
# Sum query scores densely when postings * _DENSE_RATIO >= passages, else sort them:
# about where np.bincount over all passages starts beating np.unique at 1M passages.
_DENSE_RATIO = 64


class BM25Index(Retriever):
    """A BM25 index over passages, ranking like ``rank_bm25.BM25Okapi``.

    The passage's title and text are indexed together (``"title text"``).

    Args:
        passages: The corpus. A passage's index in this sequence is its ``Hit.index``.
        tokenizer: Maps text to terms; the same one serves passages and queries.
        k1: Term-frequency saturation.
        b: Document-length normalisation.
        epsilon: Okapi only: negative IDFs become ``epsilon * mean IDF``.
        idf: ``"okapi"`` (rank_bm25's) or ``"lucene"`` (non-negative, for tiny corpora).
        max_query_terms: Distinct query terms used (the first ones); bounds the cost
            of a huge query.
    """

    format = "swirl-bm25"

    def __init__(
        self,
        passages: Sequence[Passage],
        *,
        tokenizer: Tokenizer = default_tokenizer,
        k1: float = 1.5,
        b: float = 0.75,
        epsilon: float = 0.25,
        idf: Literal["okapi", "lucene"] = "okapi",
        max_query_terms: int = 256,
    ):
        if idf not in ("okapi", "lucene"):
            raise ValueError(f"idf must be 'okapi' or 'lucene', got {idf!r}.")
        if k1 < 0 or not 0 <= b <= 1:
            raise ValueError(f"Need k1 >= 0 and 0 <= b <= 1, got k1={k1}, b={b}.")
        if max_query_terms < 1:
            raise ValueError(f"max_query_terms must be at least 1, got {max_query_terms}.")
        if not passages:
            raise ValueError("A BM25Index needs at least one passage.")
        self.tokenizer = tokenizer
        self.params = {"k1": float(k1), "b": float(b), "epsilon": float(epsilon), "idf": idf}
        self.max_query_terms = max_query_terms
        self.passages: Sequence[Passage] = list(passages)
        self._directory: Path | None = None
        self._mmap = False
        self._build([f"{p.title} {p.text}" for p in self.passages])
        self._titles: tuple[StringTable, np.ndarray] | None = None

    # building

    def _build(self, documents: list[str]) -> None:
        # Number terms in order of first appearance (a missing key gets the next id)...
        vocabulary: defaultdict[str, int] = defaultdict()
        vocabulary.default_factory = vocabulary.__len__
        term_ids = array.array("i")
        lengths = np.empty(len(documents), dtype=np.int64)
        for position, document in enumerate(documents):
            terms = self.tokenizer(document)
            lengths[position] = len(terms)
            term_ids.extend(map(vocabulary.__getitem__, terms))
        # ...then renumber them in sorted order, which StringTable's binary search needs
        # (sorted str order is UTF-8 byte order).
        terms = sorted(vocabulary)
        first_seen = np.fromiter(map(vocabulary.__getitem__, terms), np.int32, len(terms))
        del vocabulary
        rank = np.empty(len(terms), dtype=np.int32)
        rank[first_seen] = np.arange(len(terms), dtype=np.int32)
        columns = rank[np.frombuffer(term_ids, dtype=np.int32)]
        rows = np.repeat(np.arange(len(documents), dtype=np.int32), lengths)
        # Term counts are small integers, exact in float32 (half the memory of float64).
        ones = np.ones(len(columns), dtype=np.float32)
        counts = scipy.sparse.csc_matrix(
            (ones, (rows, columns)), shape=(len(documents), len(terms))
        )
        del ones, rows, columns, term_ids
        counts.sum_duplicates()  # also sorts each term's passages
        self._terms: dict[str, int] | StringTable = {term: i for i, term in enumerate(terms)}
        self._indptr = counts.indptr.astype(np.int64)
        self._docs = counts.indices.astype(np.int32)
        self._weights = self._bm25_weights(counts, lengths)

    def _bm25_weights(self, counts: scipy.sparse.csc_matrix, lengths: np.ndarray) -> np.ndarray:
        n_docs = counts.shape[0]
        k1, b = self.params["k1"], self.params["b"]
        frequency = np.diff(counts.indptr).astype(np.float64)
        if self.params["idf"] == "okapi":
            # Same operations as rank_bm25.BM25Okapi._calc_idf, vectorised.
            idf = np.log(n_docs - frequency + 0.5) - np.log(frequency + 0.5)
            if len(idf):
                idf[idf < 0] = self.params["epsilon"] * (idf.sum() / len(idf))
        else:
            idf = np.log(1 + (n_docs - frequency + 0.5) / (frequency + 0.5))
        avgdl = max(lengths.sum() / n_docs, 1e-12)
        tf = counts.data.astype(np.float64)
        dl = lengths[counts.indices]
        idf_per_posting = np.repeat(idf, np.diff(counts.indptr))
        # Same expression (and evaluation order) as rank_bm25.BM25Okapi.get_scores.
        return idf_per_posting * (tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl)))

    # searching

    def search(self, query: str, k: int) -> list[Hit]:
        """Return up to ``k`` passages with a positive score, best first, ties in passage order."""
        if k < 1:
            return []
        return self._top(*self._score(*self._query_terms(query)), k)

    def _top(self, docs: np.ndarray, scores: np.ndarray, k: int) -> list[Hit]:
        """The ``k`` best positive-scoring candidates, ties in passage order."""
        positive = scores > 0
        docs, scores = docs[positive], scores[positive]
        if len(scores) > k:
            kth = -np.partition(-scores, k - 1)[k - 1]
            keep = scores >= kth
            docs, scores = docs[keep], scores[keep]
        order = np.lexsort((docs, -scores))[:k]
        return [self._hit(int(docs[i]), float(scores[i])) for i in order]

    def title_hits(self, query: str) -> list[Hit]:
        """Passages titled exactly as the query (after normalisation), by BM25 score."""
        key = normalize_title(query)
        if not key:
            return []
        keys, title_docs = self._title_table()
        lo, hi = keys.span(key)
        if lo == hi:
            return []
        docs = np.sort(np.asarray(title_docs[lo:hi], dtype=np.int64))
        scores = self._score_of(docs, *self._query_terms(query))
        order = np.lexsort((docs, -scores))
        return [self._hit(int(docs[i]), float(scores[i])) for i in order]

    def _hit(self, doc: int, score: float) -> Hit:
        return Hit(self.passages[doc], score, doc)

    def _query_terms(self, query: str) -> tuple[np.ndarray, np.ndarray]:
        """Term ids and counts of the query's first ``max_query_terms`` distinct terms."""
        counts: dict[str, int] = {}
        for term in self.tokenizer(query):
            if term in counts:
                counts[term] += 1
            elif len(counts) < self.max_query_terms:
                counts[term] = 1
        # Sorted by term id: every code path then sums a passage's score in one order.
        found = sorted((self._terms.get(term, -1), count) for term, count in counts.items())
        found = [(term, count) for term, count in found if term >= 0]
        ids = np.array([term for term, _ in found], dtype=np.int64)
        return ids, np.array([count for _, count in found], dtype=np.float64)

    def _score(self, ids: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Candidate passages for the query terms and their BM25 scores.

        Every passage with a positive score is a candidate; others may be too.
        Each passage's score is summed in term-id order, so passages with equal
        statistics get bit-identical scores (a tie, broken by index).
        """
        spans = [(self._indptr[term], self._indptr[term + 1]) for term in ids]
        if len(spans) <= 1:
            start, end = spans[0] if spans else (0, 0)
            return self._docs[start:end], self._weights[start:end] * (counts[0] if spans else 0)
        docs = np.concatenate([self._docs[start:end] for start, end in spans])
        weights = np.concatenate(
            [
                self._weights[start:end] * count
                for (start, end), count in zip(spans, counts, strict=True)
            ]
        )
        n_passages = len(self.passages)
        if len(docs) * _DENSE_RATIO >= n_passages:
            # Many postings: a dense sum over all passages is O(passages + postings).
            dense = np.bincount(docs, weights, minlength=n_passages)
            found = np.flatnonzero(dense > 0)
            return found, dense[found]
        # Few postings: sorting them, O(postings log postings), is cheaper.
        found, inverse = np.unique(docs, return_inverse=True)
        return found, np.bincount(inverse, weights)

    def _score_of(self, docs: np.ndarray, ids: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """BM25 scores of the given (sorted) passages."""
        scores = np.zeros(len(docs))
        for term, count in zip(ids, counts, strict=True):
            postings = self._docs[self._indptr[term] : self._indptr[term + 1]]
            where = np.minimum(np.searchsorted(postings, docs), max(len(postings) - 1, 0))
            found = postings[where] == docs
            scores[found] += self._weights[self._indptr[term] + where[found]] * count
        return scores

    def _title_table(self) -> tuple[StringTable, np.ndarray]:
        if self._titles is None:
            keys = [normalize_title(passage.title) for passage in self.passages]
            order = sorted(range(len(keys)), key=lambda i: (keys[i], i))
            table = StringTable.from_strings([keys[i] for i in order])
            self._titles = table, np.asarray(order, dtype=np.int32)
        return self._titles

    # persistence

    def save(self, directory: str | os.PathLike) -> None:
        """Write the index to ``directory`` (created if needed) for ``BM25Index.load``."""
        keys, title_docs = self._title_table()
        tables = {
            "terms": StringTable.from_strings(list(self._terms)),
            "title_keys": keys,
            "titles": StringTable.from_strings([p.title for p in self.passages]),
            "texts": StringTable.from_strings([p.text for p in self.passages]),
            "ids": StringTable.from_strings([p.id for p in self.passages]),
        }
        arrays = {
            "indptr": self._indptr,
            "docs": self._docs,
            "weights": self._weights,
            "title_docs": title_docs,
        }
        for name, table in tables.items():
            arrays[f"{name}.blob"], arrays[f"{name}.offsets"] = table.blob, table.offsets
        meta = {
            "format": self.format,
            "version": FORMAT_VERSION,
            "tokenizer": tokenizer_name(self.tokenizer),
            "params": self.params,
            "passages": len(self.passages),
            "terms": len(self._terms),
            "postings": len(self._docs),
        }
        save_arrays(directory, arrays, meta)

    @classmethod
    def _from_directory(
        cls,
        directory: Path,
        manifest: dict[str, Any],
        *,
        mmap: bool,
        tokenizer: Tokenizer = default_tokenizer,
        max_query_terms: int = 256,
        verify: bool = False,
    ) -> BM25Index:
        if manifest.get("version") != FORMAT_VERSION:
            raise IndexFormatError(
                f"{directory} has index format version {manifest.get('version')}; "
                f"this version of swirl_envs reads version {FORMAT_VERSION}. Rebuild the index."
            )
        if manifest.get("tokenizer") != tokenizer_name(tokenizer):
            raise IndexFormatError(
                f"{directory} was built with tokenizer {manifest.get('tokenizer')!r}, but "
                f"{tokenizer_name(tokenizer)!r} was given; pass the same tokenizer."
            )
        arrays = load_arrays(directory, manifest, mmap=mmap, verify=verify)
        index = cls.__new__(cls)
        index.tokenizer, index.params = tokenizer, dict(manifest["params"])
        index.max_query_terms = max_query_terms
        index._directory, index._mmap = directory, mmap
        tables = {}
        for name in ("terms", "title_keys", "titles", "texts", "ids"):
            tables[name] = StringTable(arrays[f"{name}.blob"], arrays[f"{name}.offsets"])
            tables[name].check(name)
        index._terms = tables["terms"]
        index._titles = tables["title_keys"], arrays["title_docs"]
        index.passages = PassageTable(tables["titles"], tables["texts"], tables["ids"])
        index._indptr, index._docs = arrays["indptr"], arrays["docs"]
        index._weights = arrays["weights"]
        index._check(manifest, directory)
        return index

    def _check(self, manifest: dict[str, Any], directory: Path) -> None:
        sizes = {
            "passages": (manifest.get("passages"), len(self.passages)),
            "terms": (manifest.get("terms"), len(self._terms)),
            "postings": (manifest.get("postings"), len(self._docs)),
        }
        sizes["title keys"] = (len(self.passages), len(self._titles[0]))
        sizes["passage fields"] = (len(self.passages.titles), len(self.passages.ids))  # type: ignore[attr-defined]
        sizes["term pointers"] = (len(self._terms) + 1, len(self._indptr))
        sizes["postings end"] = (len(self._docs), int(self._indptr[-1]))
        for what, (expected, actual) in sizes.items():
            if expected != actual:
                raise IndexFormatError(
                    f"{directory} is inconsistent: {what} {actual} where {expected} was expected."
                )

    def __getstate__(self) -> dict[str, Any]:
        if self._directory is not None:
            # A loaded index pickles as its location; the unpickled copy maps the same files.
            return {
                "directory": str(self._directory),
                "mmap": self._mmap,
                "tokenizer": self.tokenizer,
                "max_query_terms": self.max_query_terms,
            }
        return self.__dict__.copy()

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "directory" in state:
            loaded = BM25Index.load(
                state["directory"],
                mmap=state["mmap"],
                tokenizer=state["tokenizer"],
                max_query_terms=state["max_query_terms"],
            )
            state = loaded.__dict__
        self.__dict__.update(state)

    def __len__(self) -> int:
        return len(self.passages)

    def __repr__(self) -> str:
        return (
            f"BM25Index({len(self.passages)} passages, {len(self._terms)} terms, "
            f"idf={self.params['idf']!r}, tokenizer={tokenizer_name(self.tokenizer)!r})"
        )
