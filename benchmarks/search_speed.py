"""How fast is BM25 search? Queries/s against rank_bm25, latency at scale, the per-episode cost.

Three measurements, each on generated text (no download):

1. ``compare``: ``--compare-passages`` passages (default 100k). rank_bm25's
   ``BM25Okapi`` and our ``BM25Index`` score the same queries with the same
   tokeniser; we report queries/s of each (one query at a time, and ours also
   through ``search_many``) and how often the two top-10 lists agree.
2. ``scale``: ``--passages`` passages (default 1M). Build time and peak memory
   of the build, save time, load time (memory-mapped), and query latency
   (median, p99) on the loaded index.
3. ``distractor``: building the per-question index over ten paragraphs plus one
   query, as the distractor setting does on a cache miss.

Generated text: a vocabulary of ``--vocabulary`` pseudo-words whose frequencies
follow a Zipf law (exponent ``--zipf``), the English stopwords taking the most
frequent ranks, as they do in real text. Passages have a 1-3 word title and a
log-normal number of words (median ~70, about HotPotQA's paragraph length).
Queries take a passage's title and a few words of its text, plus stopwords, like
a question.

Usage::

    python benchmarks/search_speed.py                       # 100k compare, 1M scale
    python benchmarks/search_speed.py --passages 200000 --out results/search_small.json
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import platform
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from swirl_agents.flags import add_flags, from_flags
from swirl_envs.tasks.base import Passage
from swirl_envs.tools.search import ENGLISH_STOPWORDS, BM25Index, default_tokenizer


@dataclass
class Args:
    """Arguments of the benchmark (each is a command-line flag)."""

    passages: int = 1_000_000
    """passages in the scale test (build, save, load, latency)"""
    compare_passages: int = 100_000
    """passages in the comparison with rank_bm25"""
    queries: int = 1000
    """queries timed on our index"""
    reference_queries: int = 100
    """of those, queries timed on rank_bm25 too (it takes ~0.1 s each at 100k)"""
    episodes: int = 2000
    """distractor-setting episodes (10 passages each)"""
    vocabulary: int = 500_000
    """distinct words of the generated language"""
    zipf: float = 1.0
    """Zipf exponent of content-word frequencies"""
    zipf_offset: float = 10.0
    """Mandelbrot offset of content-word ranks (flattens the head of the law)"""
    k: int = 10
    """hits per query"""
    seed: int = 0
    """seed of the generated corpus and queries"""
    skip_reference: bool = False
    """skip the rank_bm25 comparison"""
    out: str = "results/search_speed.json"
    """where to write the JSON results"""


class Language:
    """Pronounceable pseudo-words with English-like frequencies.

    Stopwords make up ``STOPWORD_SHARE`` of the tokens (Zipf among themselves);
    the other tokens follow a Zipf-Mandelbrot law over the content words, ``p(r)
    ~ 1 / (r + offset) ** exponent``, which gives the most frequent content words
    (like "film" or "american") a few tenths of a percent of all tokens, as in
    Wikipedia text.
    """

    STOPWORD_SHARE = 0.45

    def __init__(self, size: int, exponent: float, offset: float, rng: np.random.Generator):
        onsets = list("bcdfghjklmnprstvwz") + ["br", "ch", "st", "th", "tr", "sh"]
        vowels = list("aeiou") + ["ai", "ea", "ou"]
        syllables = [o + v for o in onsets for v in vowels]
        self.stopwords = np.array(sorted(ENGLISH_STOPWORDS, key=len), dtype=object)
        words: dict[str, None] = {}
        while len(words) < size:
            picks = rng.integers(0, len(syllables), size=(size, 4))
            counts = rng.integers(1, 5, size=size)
            for row, count in zip(picks.tolist(), counts.tolist(), strict=True):
                word = "".join(syllables[i] for i in row[:count])
                if word not in ENGLISH_STOPWORDS:
                    words.setdefault(word, None)
            words = dict.fromkeys(list(words)[:size])
        self.words = np.array(list(words), dtype=object)
        self.content = _cumulative(1.0 / (np.arange(1, size + 1) + offset) ** exponent)
        self.stop = _cumulative(1.0 / np.arange(1, len(self.stopwords) + 1))
        self.rng = rng

    def text(self, count: int) -> np.ndarray:
        """Draw ``count`` tokens (stopwords and content words)."""
        content = self.words[np.searchsorted(self.content, self.rng.random(count))]
        stop = self.stopwords[np.searchsorted(self.stop, self.rng.random(count))]
        return np.where(self.rng.random(count) < self.STOPWORD_SHARE, stop, content)

    def passages(self, count: int) -> list[Passage]:
        """Generate ``count`` titled passages."""
        lengths = np.clip(self.rng.lognormal(np.log(70), 0.45, count), 5, 400).astype(np.int64)
        text_words = self.text(int(lengths.sum()))
        title_lengths = self.rng.integers(1, 4, count)
        # Titles are names: drawn from the rarer half of the vocabulary.
        title_ranks = self.rng.integers(len(self.words) // 2, len(self.words), title_lengths.sum())
        title_words = self.words[title_ranks]
        passages, start, title_start = [], 0, 0
        for position in range(count):
            end, title_end = start + lengths[position], title_start + title_lengths[position]
            title = " ".join(title_words[title_start:title_end]).title()
            passages.append(Passage(title, " ".join(text_words[start:end]) + ".", str(position)))
            start, title_start = end, title_end
        return passages

    def queries(self, passages: list[Passage], count: int) -> list[str]:
        """Questions: a passage's title, two to five of its content words, and stopwords."""
        queries = []
        for position in self.rng.integers(0, len(passages), count):
            passage = passages[int(position)]
            words = [w for w in passage.text.rstrip(".").split() if w not in ENGLISH_STOPWORDS]
            picked = self.rng.choice(words or ["none"], size=int(self.rng.integers(2, 6)))
            asks = self.rng.choice(["what", "which", "who", "is", "the", "of", "was"], size=3)
            queries.append(f"{asks[0]} {asks[1]} {' '.join(picked)} {asks[2]} {passage.title}?")
        return queries

    def common_queries(self, count: int, words: int = 5, top: int = 300) -> list[str]:
        """A hard case: queries of ``words`` words among the ``top`` most frequent non-stopwords."""
        ranks = self.rng.integers(0, top, size=(count, words))
        return [" ".join(self.words[row]) for row in ranks]


class PeakMemory:
    """Peak resident memory above the starting level while the block runs (sampled every 5 ms)."""

    def __enter__(self) -> PeakMemory:
        self.start = self.peak = _resident_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _resident_bytes())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _resident_bytes())

    @property
    def extra_gib(self) -> float:
        """Peak minus start, in GiB."""
        return (self.peak - self.start) / 2**30


def _cumulative(weights: np.ndarray) -> np.ndarray:
    cumulative = np.cumsum(weights / weights.sum())
    cumulative[-1] = 1.0  # so that searchsorted never runs past the end
    return cumulative


def _resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


def _latencies_ms(index: BM25Index, queries: list[str], k: int) -> list[float]:
    latencies = []
    for query in queries:
        start = time.perf_counter()
        index.search(query, k)
        latencies.append((time.perf_counter() - start) * 1000)
    return latencies


def _postings(index: BM25Index, queries: list[str]) -> dict[str, float]:
    """How many postings (passage, term) entries the queries touch: the work of a query."""
    touched = []
    for query in queries:
        ids, _ = index._query_terms(query)
        touched.append(int((index._indptr[ids + 1] - index._indptr[ids]).sum()))
    return {"median": float(np.median(touched)), "p99": float(np.percentile(touched, 99))}


def _summary(latencies: list[float]) -> dict[str, float]:
    return {
        "median_ms": statistics.median(latencies),
        "p99_ms": float(np.percentile(latencies, 99)),
        "mean_ms": statistics.fmean(latencies),
        "max_ms": max(latencies),
    }


def compare(args: Args, language: Language) -> dict:
    """Queries/s of rank_bm25 and of our index on the same corpus and queries."""
    passages = language.passages(args.compare_passages)
    queries = language.queries(passages, args.queries)
    start = time.perf_counter()
    index = BM25Index(passages)
    result: dict = {"passages": len(passages), "build_s": time.perf_counter() - start}
    reference_queries = queries[: args.reference_queries]
    start = time.perf_counter()
    for query in reference_queries:
        index.search(query, args.k)
    ours_s = time.perf_counter() - start
    start = time.perf_counter()
    index.search_many(reference_queries, args.k)
    batch_s = time.perf_counter() - start
    result.update(
        queries=len(reference_queries),
        ours_qps=len(reference_queries) / ours_s,
        ours_batch_qps=len(reference_queries) / batch_s,
    )
    if args.skip_reference:
        return result
    from rank_bm25 import BM25Okapi

    start = time.perf_counter()
    reference = BM25Okapi([default_tokenizer(f"{p.title} {p.text}") for p in passages])
    result["rank_bm25_build_s"] = time.perf_counter() - start
    agree = 0
    start = time.perf_counter()
    all_scores = [reference.get_scores(default_tokenizer(query)) for query in reference_queries]
    reference_s = time.perf_counter() - start
    for query, scores in zip(reference_queries, all_scores, strict=True):
        order = np.lexsort((np.arange(len(scores)), -scores))[: args.k]
        expected = [int(i) for i in order if scores[i] > 0]
        agree += [hit.index for hit in index.search(query, args.k)] == expected
    result.update(
        rank_bm25_qps=len(reference_queries) / reference_s,
        speedup=reference_s / ours_s,
        batch_speedup=reference_s / batch_s,
        top_k_agreement=agree / len(reference_queries),
    )
    return result


def scale(args: Args, language: Language) -> dict:
    """Build, save, load and query an index over ``args.passages`` passages."""
    start = time.perf_counter()
    passages = language.passages(args.passages)
    queries = language.queries(passages, args.queries)
    common = language.common_queries(args.queries)
    result: dict = {"passages": len(passages), "generate_s": time.perf_counter() - start}
    gc.collect()
    with PeakMemory() as memory:
        start = time.perf_counter()
        index = BM25Index(passages)
        result["build_s"] = time.perf_counter() - start
    result.update(
        build_peak_extra_gib=memory.extra_gib,
        terms=len(index._terms),
        postings=len(index._docs),
    )
    result["built"] = _summary(_latencies_ms(index, queries, args.k))
    result["postings_per_query"] = _postings(index, queries)
    result["common_postings_per_query"] = _postings(index, common)
    with tempfile.TemporaryDirectory() as directory:
        start = time.perf_counter()
        index.save(directory)
        result["save_s"] = time.perf_counter() - start
        result["index_mib"] = sum(f.stat().st_size for f in Path(directory).iterdir()) / 2**20
        del index, passages
        gc.collect()
        start = time.perf_counter()
        loaded = BM25Index.load(directory, mmap=True)
        result["load_s"] = time.perf_counter() - start
        start = time.perf_counter()
        loaded.search(queries[0], args.k)
        result["first_query_ms"] = (time.perf_counter() - start) * 1000
        result["loaded"] = _summary(_latencies_ms(loaded, queries, args.k))
        result["loaded_common"] = _summary(_latencies_ms(loaded, common, args.k))
        start = time.perf_counter()
        loaded.search_many(queries, args.k)
        result["loaded_batch_qps"] = len(queries) / (time.perf_counter() - start)
        del loaded
    return result


def distractor(args: Args, language: Language) -> dict:
    """Per-episode cost of the distractor setting: index 10 passages, run one query."""
    passages = language.passages(args.episodes * 10)
    queries = language.queries(passages, args.episodes)
    latencies = []
    for episode in range(args.episodes):
        group = passages[episode * 10 : episode * 10 + 10]
        start = time.perf_counter()
        BM25Index(group, idf="lucene").search(queries[episode], 1)
        latencies.append((time.perf_counter() - start) * 1000)
    return {"episodes": args.episodes, **_summary(latencies)}


def main() -> None:
    """Run the three measurements, print a table, write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_flags(parser, Args)
    args = from_flags(Args, parser.parse_args())
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    language = Language(args.vocabulary, args.zipf, args.zipf_offset, rng)
    results = {
        "args": dataclasses.asdict(args),
        "machine": {"python": platform.python_version(), "processor": platform.processor()},
        "language_s": time.perf_counter() - start,
        "distractor": distractor(args, language),
        "compare": compare(args, language),
        "scale": scale(args, language),
    }
    print_table(results)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(f"\nwrote {args.out}")


def print_table(results: dict) -> None:
    """Print the headline numbers as a markdown table."""
    d, c, s = results["distractor"], results["compare"], results["scale"]

    def latency(summary: dict) -> str:
        return f"{summary['median_ms']:.2f} / {summary['p99_ms']:.2f} ms"

    def postings(summary: dict) -> str:
        return f"{summary['median']:,.0f} / {summary['p99']:,.0f}"

    rows = [
        ("distractor: build 10 passages + 1 query, median / p99", latency(d)),
        (f"compare ({c['passages']:,} passages): ours, queries/s", f"{c['ours_qps']:,.0f}"),
        ("compare: ours via search_many, queries/s", f"{c['ours_batch_qps']:,.0f}"),
    ]
    if "rank_bm25_qps" in c:
        speedups = f"{c['speedup']:,.0f}x / {c['batch_speedup']:,.0f}x"
        rows += [
            ("compare: rank_bm25 BM25Okapi, queries/s", f"{c['rank_bm25_qps']:,.1f}"),
            ("compare: speed-up (one at a time / search_many)", speedups),
            ("compare: same top-k as rank_bm25", f"{c['top_k_agreement']:.1%}"),
        ]
    rows += [
        (f"scale ({s['passages']:,} passages): build", f"{s['build_s']:.1f} s"),
        ("scale: build peak memory (above start)", f"{s['build_peak_extra_gib']:.2f} GiB"),
        ("scale: index on disk", f"{s['index_mib']:,.0f} MiB"),
        ("scale: save / load (mmap)", f"{s['save_s']:.1f} s / {s['load_s'] * 1000:.0f} ms"),
        ("scale: first query after load", f"{s['first_query_ms']:.1f} ms"),
        ("scale: latency median / p99 (loaded)", latency(s["loaded"])),
        ("scale: latency median / p99 (built)", latency(s["built"])),
        ("scale: postings per query, median / p99", postings(s["postings_per_query"])),
        ("scale: common-word queries, median / p99", latency(s["loaded_common"])),
        ("scale: common-word postings, median / p99", postings(s["common_postings_per_query"])),
        ("scale: queries/s via search_many (loaded)", f"{s['loaded_batch_qps']:,.0f}"),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"| {'metric'.ljust(width)} | value |\n|{'-' * (width + 2)}|-------|")
    for name, value in rows:
        print(f"| {name.ljust(width)} | {value} |")


if __name__ == "__main__":
    main()
