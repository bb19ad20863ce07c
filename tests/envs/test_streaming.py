"""The streaming JSON array reader equals json.load; the loaders give the same tasks either way."""

import io
import json
from pathlib import Path

import pytest

from swirl_envs.tasks.beerqa import beerqa_task, load_beerqa
from swirl_envs.tasks.cofca import cofca_task, load_cofca
from swirl_envs.tasks.files import DataFormatError, read_records
from swirl_envs.tasks.gsm8k import load_gsm8k
from swirl_envs.tasks.hotpotqa import hotpotqa_task, load_hotpotqa
from swirl_envs.tasks.json_stream import JSONStreamError, NotAnArrayError, iter_json_array
from swirl_envs.tasks.musique import load_musique, musique_task
from tests.envs.dataset_fixtures import (
    BEERQA,
    COFCA,
    HOTPOTQA,
    write_beerqa,
    write_cofca,
    write_gsm8k,
    write_hotpotqa,
    write_musique,
)

SHARED = Path("/work/shared/data")

SHAPES = [
    [],
    [[]],
    [{}],
    [1, -2.5e-3, 10**30, True, False, None, "", 0],
    [[1, [2, [3, {"a": [4, {"b": []}]}]]], {"c": {"d": {"e": None}}}],
    ['quote " bracket ] brace } comma , colon :', "back\\slash", '\\"]', "tab\tnew\nline"],
    ["é ü ß 中文 日本語 😀 🤖 \u2028", {"ключ": "значение", "😀": ["🤖"]}],
    [{"_id": "x", "context": [["T", [" s1", " s2 ]", ' "s3" ']]], "n": 12345678901234567890}],
]


def stream(text: str, chunk_chars: int, key: str | None = None) -> list:
    return list(iter_json_array(io.StringIO(text), "t.json", key=key, chunk_chars=chunk_chars))


@pytest.mark.parametrize("chunk_chars", [1, 2, 3, 7, 64, 1 << 20])
@pytest.mark.parametrize("shape", SHAPES, ids=range(len(SHAPES)))
def test_stream_equals_json_load_on_every_shape_and_chunk_size(shape, chunk_chars):
    for text in (
        json.dumps(shape),
        json.dumps(shape, ensure_ascii=False),
        json.dumps(shape, indent=2, ensure_ascii=False),
        " \n\t" + json.dumps(shape, separators=(",", ":")) + "\r\n ",
    ):
        assert stream(text, chunk_chars) == json.loads(text)


def test_multibyte_characters_split_across_byte_chunks_decode_whole(tmp_path):
    records = [{"text": "😀é中" * n, "n": n} for n in range(40)]
    path = tmp_path / "a.json"
    path.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    for chunk_chars in (1, 2, 5, 13):
        # A small byte buffer makes the file's byte reads end inside 2- and 4-byte characters.
        with open(path, encoding="utf-8", buffering=3) as handle:
            streamed = list(iter_json_array(handle, str(path), chunk_chars=chunk_chars))
        assert streamed == records


def test_numbers_and_escapes_cut_by_a_chunk_boundary_read_whole():
    text = '[1.5e10, -0.25, 123456, "\\ud83d\\ude00", "\\u00e9", 7]'
    for chunk_chars in range(1, len(text) + 1):
        assert stream(text, chunk_chars) == json.loads(text)


def test_a_long_element_in_small_chunks_reads_whole():
    records = [{"text": "x" * 100_000}, {"text": "y"}]
    assert stream(json.dumps(records), 16) == records


def test_the_data_array_of_an_object_streams_with_its_other_members_dropped():
    document = {"version": "1.0", "split": "dev", "data": [{"a": 1}, {"b": [2]}], "z": [3]}
    for chunk_chars in (1, 4, 1 << 20):
        assert stream(json.dumps(document, indent=1), chunk_chars, key="data") == document["data"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[{"a": 1}, {"b": ', r"t\.json, record 2, line 1 column \d+: not valid JSON"),
        ('[{"a": 1},\n {"b": "unterminated', r"t\.json, record 2, line 2 column 8: not valid"),
        ('[{"a": 1}', r"t\.json, after record 1, .*expected ',' or '\]'.*the end of the text"),
        ('[{"a": 1} x {"b": 2}]', r"t\.json, after record 1, line 1 column 11: expected ','"),
        ('[{"a": 1},\n\n {"b": 2},, 3]', r"t\.json, record 3, line 3 column 11: not valid JSON"),
        ('[{"a": 1}] [2]', r"t\.json, after record 1, line 1 column 12: more text follows"),
        ("[1, 2,]", r"t\.json, record 3, line 1 column 7: not valid JSON"),
        ("[", r"t\.json, record 1, line 1 column 2: the text ends before the record"),
    ],
)
def test_errors_name_the_file_the_record_and_the_line(text, message):
    for chunk_chars in (1, 3, 1 << 20):
        with pytest.raises(JSONStreamError, match=message):
            stream(text, chunk_chars)


@pytest.mark.parametrize("text", ['{"a": [1]}', '"a string"', "", "  \n", "12"])
def test_a_document_that_is_not_an_array_is_refused_before_any_element(text):
    with pytest.raises(NotAnArrayError, match=r"t\.json: .*(expected a JSON array|no 'data')"):
        stream(text, 4, key="data" if text.startswith("{") else None)


def test_a_truncated_hotpotqa_file_names_the_file_and_the_record(tmp_path):
    path = write_hotpotqa(tmp_path)
    text = path.read_text(encoding="utf-8")
    path.write_text(text[: len(text) - 200], encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"dev_distractor_v1\.json, record 2, line \d+"):
        load_hotpotqa(path)


def whole_file(path: Path, convert) -> list:
    """The tasks of a JSON array file parsed whole, as the loaders did before they streamed."""
    document = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(document, dict):
        document = document["data"]
    return [convert(record, index) for index, record in enumerate(document)]


def test_loaders_give_the_tasks_of_a_whole_file_parse_at_any_chunk_size(tmp_path):
    cases = [
        (load_hotpotqa, write_hotpotqa(tmp_path), hotpotqa_task),
        (load_beerqa, write_beerqa(tmp_path), beerqa_task),
        (load_cofca, write_cofca(tmp_path), cofca_task),
    ]
    assert len(HOTPOTQA) > 1 and len(BEERQA["data"]) > 1 and len(COFCA) > 1
    for load, path, convert in cases:
        expected = whole_file(path, convert)
        assert load(path) == expected
        for chunk_chars in (1, 5, 333):
            records = [record.data for record in read_records(path, chunk_chars=chunk_chars)]
            assert [convert(record, i) for i, record in enumerate(records)] == expected
        assert [task.meta for task in load(path)] == [task.meta for task in expected]


def test_jsonl_loaders_read_line_by_line_with_the_same_tasks(tmp_path):
    musique = write_musique(tmp_path)
    lines = musique.read_text(encoding="utf-8").splitlines()
    assert load_musique(musique) == [
        musique_task(json.loads(line), i) for i, line in enumerate(lines)
    ]
    assert len(load_gsm8k(write_gsm8k(tmp_path))) > 1


@pytest.mark.skipif(not SHARED.is_dir(), reason="the shared data samples are not on this machine")
def test_the_published_samples_stream_to_the_tasks_of_a_whole_file_parse():
    hotpotqa = SHARED / "hotpotqa" / "hotpot_train_sample_100.json"
    if hotpotqa.is_file():
        tasks = load_hotpotqa(hotpotqa, split="train")
        assert len(tasks) == 100
        assert tasks == whole_file(hotpotqa, hotpotqa_task)
        assert [t.meta for t in tasks] == [t.meta for t in whole_file(hotpotqa, hotpotqa_task)]
    for musique in sorted((SHARED / "musique").glob("*.jsonl")):
        lines = musique.read_text(encoding="utf-8").splitlines()
        expected = [musique_task(json.loads(line), i) for i, line in enumerate(lines)]
        assert load_musique(musique, split="train") == expected


def test_a_passage_keeps_wide_text_as_utf8_and_reads_it_back():
    """A full split's memory is mostly passage text: one en dash makes a ``str`` 2 bytes a
    character, so such text is kept as UTF-8; reading, equality, hashing and pickling see
    the same passage either way."""
    import pickle
    import sys

    from swirl_envs import Passage

    for text, kept in [("plain ascii", str), ("range 1990–2000, ✓ done", bytes), ("", str)]:
        passage = Passage("Title", text, "q#0")
        assert passage.text == text and isinstance(passage.stored, kept)
        assert pickle.loads(pickle.dumps(passage)) == passage
        assert hash(Passage("Title", text, "q#0")) == hash(passage)
        assert repr(passage) == f"Passage(title='Title', text={text!r}, id='q#0')"
    wide = "An en dash – in a long paragraph. " * 20
    assert sys.getsizeof(Passage("T", wide).stored) < 0.6 * sys.getsizeof(wide)
    assert Passage(title="T", text="x").id == ""
