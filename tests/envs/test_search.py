import json
import pickle
import random
from pathlib import Path

import numpy as np
import pytest
from rank_bm25 import BM25Okapi

from swirl_envs import Passage, Task
from swirl_envs.tools import bm25
from swirl_envs.tools.search import (
    BM25Index,
    IndexFormatError,
    Retriever,
    SearchTool,
    WordTokenizer,
    default_tokenizer,
    load_corpus,
    make_search_tool,
    normalize_title,
)

COMMON = (
    "film american born album band song released city river county football player team "
    "school university war president company novel series television station built "
    "population church state village district"
).split()
STOP = "the of and in a is was by to for which who that on at with from as".split()


def hotpot_like_corpus(size: int, seed: int = 0) -> list[Passage]:
    """Wikipedia-style paragraphs: Zipf-ish words, names, years, repeated titles and duplicates."""
    rng = random.Random(seed)
    names = [
        "".join(rng.choices("bcdfgklmnprstvz", k=2)) + rng.choice("aeiou") + "n" for _ in range(900)
    ]
    names = [name.capitalize() for name in names]
    vocabulary = STOP + COMMON + [name.lower() for name in names]
    weights = [1 / (rank + 1) for rank in range(len(vocabulary))]
    passages: list[Passage] = []
    for position in range(size):
        if position % 97 == 96:  # exact duplicates make exact score ties
            passages.append(passages[rng.randrange(len(passages))])
            continue
        title = " ".join(rng.sample(names, rng.randint(1, 2)))
        if position % 41 == 40:  # MuSiQue repeats titles with different text
            title = passages[rng.randrange(len(passages))].title
        words = rng.choices(vocabulary, weights, k=rng.randint(15, 90))
        words[rng.randrange(len(words))] = f"({rng.randint(1900, 2020)})"
        text = f"{title} is a " + " ".join(words) + "."
        passages.append(Passage(title, text, f"p{position}"))
    return passages


def questions(passages: list[Passage], count: int, seed: int = 1) -> list[str]:
    """Questions naming words of a passage, with stopwords; some are a single common word."""
    rng = random.Random(seed)
    result = []
    for number in range(count):
        if number % 10 == 0:
            result.append(f"the {rng.choice(COMMON)}")
            continue
        passage = rng.choice(passages)
        words = rng.sample(passage.text.split(), 4)
        result.append(f"Which {' '.join(words)} of {passage.title.split()[0]}?")
    return result


@pytest.fixture(scope="module")
def corpus() -> list[Passage]:
    return hotpot_like_corpus(3000)


@pytest.fixture(scope="module")
def index(corpus) -> BM25Index:
    return BM25Index(corpus)


def reference_top(reference: BM25Okapi, query: str, k: int = 10) -> tuple[list[int], np.ndarray]:
    """rank_bm25's top k by score, ties by passage index, positive scores only (our contract)."""
    scores = reference.get_scores(default_tokenizer(query))
    order = np.lexsort((np.arange(len(scores)), -scores))
    return [int(i) for i in order[:k] if scores[i] > 0], scores


@pytest.mark.parametrize(
    ("k1", "b", "epsilon", "dense_ratio"),
    [(1.5, 0.75, 0.25, 64), (1.5, 0.75, 0.25, 0), (1.5, 0.75, 0.25, 10**9), (0.9, 0.4, 0.5, 64)],
    ids=["default", "sorted-sum", "dense-sum", "other-parameters"],
)
def test_top10_equals_rank_bm25_okapi_with_ties_broken_by_passage_index(
    corpus, monkeypatch, k1, b, epsilon, dense_ratio
):
    monkeypatch.setattr(bm25, "_DENSE_RATIO", dense_ratio)  # both ways of summing scores
    index = BM25Index(corpus, k1=k1, b=b, epsilon=epsilon)
    reference = BM25Okapi(
        [default_tokenizer(f"{p.title} {p.text}") for p in corpus], k1=k1, b=b, epsilon=epsilon
    )
    ties = 0
    for query in questions(corpus, 200):
        expected, scores = reference_top(reference, query)
        hits = index.search(query, 10)
        assert [hit.index for hit in hits] == expected, query
        np.testing.assert_allclose([hit.score for hit in hits], scores[expected], rtol=1e-12)
        ties += len(set(scores[expected])) < len(expected)
    assert ties > 0  # the fixture exercises the tie rule


def test_search_many_equals_one_query_at_a_time(index, corpus):
    queries = questions(corpus, 50, seed=5)
    assert index.search_many(queries, 3) == [index.search(query, 3) for query in queries]


def test_lucene_idf_scores_match_the_formula():
    passages = [
        Passage("Alpha", "red red green"),
        Passage("Beta", "red blue"),
        Passage("Gamma", "green blue blue yellow"),
    ]
    index = BM25Index(passages, idf="lucene", k1=1.2, b=0.75)
    documents = [default_tokenizer(f"{p.title} {p.text}") for p in passages]
    avgdl = sum(map(len, documents)) / len(documents)

    def score(query_terms, document):
        total = 0.0
        for term in query_terms:
            n = sum(term in d for d in documents)
            tf = document.count(term)
            idf = np.log(1 + (len(documents) - n + 0.5) / (n + 0.5))
            total += idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * len(document) / avgdl))
        return total

    hits = index.search("red blue", 3)
    expected = sorted(range(3), key=lambda i: -score(["red", "blue"], documents[i]))
    assert [hit.index for hit in hits] == expected
    for hit in hits:
        assert hit.score == pytest.approx(score(["red", "blue"], documents[hit.index]))


def test_okapi_gives_nothing_for_a_word_in_half_the_passages_but_lucene_finds_it():
    passages = [Passage(f"T{i}", "shared word" if i < 2 else "other") for i in range(4)]
    assert BM25Index(passages).search("shared", 5) == []
    assert {hit.index for hit in BM25Index(passages, idf="lucene").search("shared", 5)} == {0, 1}


@pytest.mark.parametrize("query", ["", "   ", "the of and which", "zzzunknownword", "?!"])
def test_queries_without_known_terms_return_no_hits(index, query):
    assert index.search(query, 5) == []


def test_k_bounds_the_number_of_hits(index):
    assert len(index.search("film", 7)) == 7
    assert index.search("film", 0) == []


@pytest.mark.timeout(60)
def test_a_100kb_query_is_capped_to_its_first_256_distinct_terms(index, corpus):
    rng = random.Random(3)
    words = sorted({w.strip(".()").lower() for p in corpus for w in p.text.split()} - set(STOP))
    rng.shuffle(words)
    query = " ".join(words[i % len(words)] for i in range(20_000))[:100_000]
    assert len(query) == 100_000
    tokens = default_tokenizer(query)
    first_terms = set(list(dict.fromkeys(tokens))[:256])
    assert len(set(tokens)) > 256
    capped = " ".join(token for token in tokens if token in first_terms)  # repeats kept
    assert index.search(query, 10) == index.search(capped, 10)
    assert len(index.search(query, 10)) == 10


def test_default_tokenizer_folds_case_and_accents_splits_cjk_and_drops_stopwords():
    assert default_tokenizer("The Café of São Paulo's") == ["cafe", "sao", "paulo"]
    assert default_tokenizer("東京大学は日本") == ["東", "京", "大", "学", "は", "日", "本"]
    assert default_tokenizer("Москва — столица России") == ["москва", "столица", "россии"]
    assert default_tokenizer("서울 특별시") == ["서울", "특별시"]
    assert default_tokenizer("") == []
    assert WordTokenizer(stopwords=())("The end") == ["the", "end"]


def test_unicode_passages_are_searchable_with_or_without_accents():
    passages = [
        Passage("Beyoncé", "Beyoncé Knowles is a singer from Houston."),
        Passage("東京", "東京は日本の首都です。"),
        Passage("Москва", "Москва — столица России."),
        Passage("القاهرة", "القاهرة عاصمة مصر"),
        Passage("Plain", "An ordinary English paragraph about rivers."),
    ]
    index = BM25Index(passages, idf="lucene")
    assert index.search("beyonce", 1)[0].index == 0
    assert index.search("Beyoncé", 1)[0].index == 0
    assert index.search("日本の首都", 1)[0].index == 1
    assert index.search("столица", 1)[0].index == 2
    assert index.search("مصر", 1)[0].index == 3
    assert index.search("\udcff\x00\u200b", 1) == []


def whitespace_tokenizer(text: str) -> list[str]:
    return text.lower().split()


def test_a_plug_in_tokenizer_is_used_and_recorded_in_the_saved_index(tmp_path):
    passages = [Passage("A", "state-of-the-art model"), Passage("B", "state of the art")]
    index = BM25Index(passages, tokenizer=whitespace_tokenizer, idf="lucene")
    assert [hit.index for hit in index.search("state-of-the-art", 2)] == [0]
    index.save(tmp_path / "index")
    with pytest.raises(IndexFormatError, match="tokenizer"):
        BM25Index.load(tmp_path / "index")
    loaded = BM25Index.load(tmp_path / "index", tokenizer=whitespace_tokenizer)
    assert loaded.search("state-of-the-art", 2) == index.search("state-of-the-art", 2)


@pytest.mark.parametrize("mmap", [True, False])
def test_save_and_load_return_identical_results(index, corpus, tmp_path, mmap):
    index.save(tmp_path / "index")
    loaded = Retriever.load(tmp_path / "index", mmap=mmap)
    assert isinstance(loaded, BM25Index)
    queries = questions(corpus, 200, seed=9)
    assert loaded.search_many(queries, 10) == index.search_many(queries, 10)
    assert [loaded.passages[i] for i in (0, 1234, 2999)] == [corpus[i] for i in (0, 1234, 2999)]
    assert loaded.title_hits(corpus[7].title) == index.title_hits(corpus[7].title)


def test_a_loaded_index_pickles_as_its_location(index, tmp_path):
    index.save(tmp_path / "index")
    loaded = BM25Index.load(tmp_path / "index")
    payload = pickle.dumps(loaded)
    assert len(payload) < 2000
    assert pickle.loads(payload).search("film band", 5) == index.search("film band", 5)


def test_a_built_index_pickles_with_its_data(index):
    assert pickle.loads(pickle.dumps(index)).search("film band", 5) == index.search("film band", 5)


def save_small(tmp_path: Path) -> Path:
    directory = tmp_path / "index"
    BM25Index(hotpot_like_corpus(200)).save(directory)
    return directory


def test_a_truncated_index_file_raises_a_clear_error(tmp_path):
    directory = save_small(tmp_path)
    path = directory / "weights.npy"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(IndexFormatError, match=r"weights\.npy.*truncated"):
        BM25Index.load(directory)


def test_a_changed_index_file_fails_its_checksum(tmp_path):
    directory = save_small(tmp_path)
    path = directory / "docs.npy"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IndexFormatError, match=r"docs\.npy.*checksum"):
        BM25Index.load(directory)


def test_a_file_from_another_index_is_detected(tmp_path):
    directory = save_small(tmp_path)
    other = tmp_path / "other"
    BM25Index(hotpot_like_corpus(300, seed=4)).save(other)
    (directory / "indptr.npy").write_bytes((other / "indptr.npy").read_bytes())
    with pytest.raises(IndexFormatError, match=r"indptr\.npy"):
        BM25Index.load(directory)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.update(version=99), "format version 99"),
        (lambda m: m.update(format="dense"), "'dense' index"),
        (lambda m: m.update(passages=5), "inconsistent"),
    ],
)
def test_a_mismatched_manifest_raises_a_clear_error(tmp_path, edit, message):
    directory = save_small(tmp_path)
    manifest = json.loads((directory / "manifest.json").read_text())
    edit(manifest)
    (directory / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexFormatError, match=message):
        BM25Index.load(directory)


def test_a_directory_without_an_index_raises_a_clear_error(tmp_path):
    with pytest.raises(IndexFormatError, match="manifest.json is missing"):
        BM25Index.load(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(IndexFormatError, match="corrupt"):
        BM25Index.load(tmp_path)


def test_an_empty_corpus_or_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="at least one passage"):
        BM25Index([])
    with pytest.raises(ValueError, match="idf"):
        BM25Index([Passage("a", "b")], idf="tfidf")  # type: ignore[arg-type]


# The search tool.


def distractor_task() -> Task:
    """Ten paragraphs that all mention the person, so Okapi IDF cannot find her by name."""
    passages = [
        Passage(f"Film {i}", f"Ada Lovelace appears in film number {i} about engines.")
        for i in range(7)
    ]
    passages += [
        Passage("Ada Lovelace", "Augusta Ada King was an English mathematician and writer."),
        Passage("Analytical Engine", "The Analytical Engine was designed by Charles Babbage."),
        Passage("Ada Lovelace", "Ada Lovelace Day celebrates women in science; Ada Lovelace."),
    ]
    return Task("t1", "Who was Ada Lovelace?", ("mathematician",), passages=tuple(passages))


def test_a_query_naming_a_title_ranks_that_passage_first_and_bm25_orders_repeated_titles():
    task = distractor_task()
    tool = SearchTool("distractor", k=3, max_chars=1000)
    shown = tool("ada lovelace!", task).text.split("\n\n")
    assert shown[0].startswith("Ada Lovelace: Ada Lovelace Day")  # more "ada lovelace" terms
    assert shown[1].startswith("Ada Lovelace: Augusta Ada King")
    assert len(shown) == 3


def test_a_title_query_on_a_shared_index_finds_the_titled_passage():
    task = distractor_task()
    tool = SearchTool(BM25Index(task.passages))
    assert tool("Analytical   ENGINE", task).text.startswith("Analytical Engine: ")


def test_results_show_title_and_text_cut_to_the_budget():
    task = distractor_task()
    tool = SearchTool("distractor", k=2, max_chars=30)
    parts = tool("Charles Babbage mathematician", task).text.split("\n\n")
    assert parts[0] == "Analytical Engine: The Analyt…"
    assert all(len(part) <= 30 for part in parts) and len(parts) == 2


def test_no_match_says_no_results_and_an_empty_query_is_an_error():
    tool = SearchTool("distractor")
    task = distractor_task()
    assert tool("quantum chromodynamics", task).text == "No results."
    assert tool("   ", task).ok is False
    assert tool("anything", Task("t", "q", ("a",))).text == "No results."


def test_call_many_equals_single_calls_for_both_kinds_of_corpus(corpus):
    tasks = [distractor_task(), Task("t2", "q", ("a",), passages=tuple(corpus[:10]))]
    calls = [(query, tasks[i % 2]) for i, query in enumerate(questions(corpus[:10], 12))]
    calls.append(("", tasks[0]))
    for tool in (SearchTool("distractor", k=2), SearchTool(BM25Index(corpus[:50]), k=2)):
        assert tool.call_many(calls) == [tool(query, task) for query, task in calls]


def test_the_tool_pickles_without_its_per_task_cache():
    tool = SearchTool("distractor")
    task = distractor_task()
    before = tool("Babbage", task)
    assert len(tool._cache) == 1
    copy = pickle.loads(pickle.dumps(tool))
    assert copy._cache == {} and copy("Babbage", task) == before


def test_the_per_task_cache_is_bounded():
    tool = SearchTool("distractor", cache_size=2)
    for i in range(5):
        tool("x", Task(f"t{i}", "q", ("a",), passages=(Passage(f"T{i}", "x"),)))
    assert len(tool._cache) == 2


def test_normalize_title_ignores_case_accents_punctuation_and_spacing():
    assert normalize_title("  Beyoncé  KNOWLES-Carter! ") == "beyonce knowles carter"


def test_the_tool_schema_names_the_query_argument():
    schema = SearchTool("distractor").schema["function"]
    assert schema["name"] == "search" and "query" in schema["parameters"]["properties"]


# Corpora.


def test_load_corpus_reads_jsonl_and_drops_identical_passages(tmp_path):
    path = tmp_path / "corpus.jsonl"
    lines = [
        {"title": "A", "text": "alpha", "id": "1"},
        {"title": "B", "text": "beta"},
        {"title": "A", "text": "alpha", "id": "3"},
        {"title": "A", "text": "another alpha", "id": 4},
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n", encoding="utf-8")
    assert load_corpus(path) == [
        Passage("A", "alpha", "1"),
        Passage("B", "beta", ""),
        Passage("A", "another alpha", "4"),
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [("{broken", "not valid JSON"), ("[1, 2]", "a JSON object"), ('{"title": "T"}', "'title' and")],
)
def test_a_corrupt_corpus_line_names_the_file_and_line(tmp_path, line, message):
    path = tmp_path / "corpus.jsonl"
    path.write_text('{"title": "A", "text": "ok"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"corpus\.jsonl, line 2: .*{message}"):
        load_corpus(path)


def test_make_search_tool_builds_each_kind_of_corpus(tmp_path, corpus):
    tasks = [
        Task(f"t{i}", "q", ("a",), passages=tuple(corpus[i * 10 : i * 10 + 12])) for i in range(5)
    ]
    assert make_search_tool("distractor", tasks).corpus == "distractor"
    open_tool = make_search_tool("open", tasks, k=2, max_chars=100)
    assert (open_tool.k, open_tool.max_chars) == (2, 100)
    assert make_search_tool("open", list(tasks)).corpus is open_tool.corpus  # built once
    assert len(open_tool.corpus) == len({(p.title, p.text) for t in tasks for p in t.passages})
    open_tool.corpus.save(tmp_path / "index")
    from_dir = make_search_tool(str(tmp_path / "index"), tasks, k=2, max_chars=100)
    assert from_dir("film band", tasks[0]) == open_tool("film band", tasks[0])
    jsonl = tmp_path / "corpus.jsonl"
    jsonl.write_text("\n".join(json.dumps({"title": p.title, "text": p.text}) for p in corpus[:20]))
    assert len(make_search_tool(str(jsonl), tasks).corpus) == len(set(corpus[:20]))
    with pytest.raises(ValueError, match="'distractor', 'open'"):
        make_search_tool("opne", tasks)


def test_rank_returns_the_hits_the_tool_shows():
    task = distractor_task()
    tool = SearchTool("distractor", k=3, max_chars=10_000)
    hits = tool.rank("Ada Lovelace", task)
    assert len(hits) == 3 and hits[0].passage.title == "Ada Lovelace"
    shown = "\n\n".join(f"{hit.passage.title}: {hit.passage.text}" for hit in hits)
    assert tool("Ada Lovelace", task).text == shown


def test_an_env_step_with_a_search_action_shows_the_passage_and_the_env_pickles():
    from swirl_envs.env import SwirlEnv

    env = SwirlEnv(
        [distractor_task()], [SearchTool("distractor")], system_prompt="Search.", max_steps=3
    )
    env.reset(seed=0)
    *_, info = env.step("<search_query>Analytical Engine</search_query>")
    assert "Analytical Engine: The Analytical Engine was designed" in info["feedback"]
    copy = pickle.loads(pickle.dumps(env))
    copy.reset(seed=0)
    assert (
        copy.step("<search_query>Analytical Engine</search_query>")[-1]["feedback"]
        == (info["feedback"])
    )
