"""The real-benchmark loaders and envs: GSM8K, HotPotQA, MuSiQue, BeerQA, CofCA (on fixtures)."""

import importlib.util
import json
import logging
import sys
import types
from pathlib import Path

import gymnasium as gym
import pytest

import swirl_envs  # noqa: F401  (registers the ids)
from swirl_envs import Task
from swirl_envs.prompts import SEARCH_PROMPT
from swirl_envs.scoring import numbers_equal
from swirl_envs.tasks.beerqa import BeerQAEnv, load_beerqa
from swirl_envs.tasks.cofca import CofCAEnv, load_cofca
from swirl_envs.tasks.files import DataFormatError, DatasetNotFoundError
from swirl_envs.tasks.gsm8k import GSM8KEnv, load_gsm8k
from swirl_envs.tasks.hotpotqa import HotPotQAEnv, load_hotpotqa
from swirl_envs.tasks.musique import UNANSWERABLE, MuSiQueEnv, fill_references, load_musique
from swirl_envs.tasks.search_env import supporting_passages
from swirl_envs.tools.calculator import Calculator
from tests.envs.dataset_fixtures import (
    BEERQA,
    GSM8K,
    HOTPOTQA,
    MUSIQUE,
    write_beerqa,
    write_cofca,
    write_gsm8k,
    write_hotpotqa,
    write_json,
    write_jsonl,
    write_musique,
)

QA_ENVS = {
    "hotpotqa": (HotPotQAEnv, write_hotpotqa, {}),
    "musique": (MuSiQueEnv, write_musique, {}),
    "musique-full": (
        MuSiQueEnv,
        lambda folder: write_musique(folder, full=True),
        {"variant": "full"},
    ),
    "beerqa": (BeerQAEnv, write_beerqa, {}),
    "cofca": (CofCAEnv, write_cofca, {}),
}


def qa_env(name, tmp_path, **kwargs):
    env_class, writer, options = QA_ENVS[name]
    return env_class(writer(tmp_path), **options, **kwargs)


def play(env, index, actions):
    """Reset on task ``index`` and play ``actions``; return the (reward, info) of every step."""
    env.reset(options={"index": index})
    steps = []
    for action in actions:
        _, reward, terminated, truncated, info = env.step(action)
        steps.append((reward, info))
        if terminated or truncated:
            break
    return steps


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No data folder content and an unreachable Hub, whatever the machine."""
    monkeypatch.setenv("SWIRL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    for name in (
        "HF_HUB_OFFLINE",
        "HF_DATASETS_OFFLINE",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "data"


# GSM8K


def test_gsm8k_loader_reads_the_answer_after_hashes_and_the_annotated_steps(tmp_path):
    tasks = load_gsm8k(write_gsm8k(tmp_path))
    assert [task.answers for task in tasks] == [("72",), ("10",), ("3.33",), ("1,200",)]
    assert tasks[0].question.startswith("Natalia sold clips")
    assert tasks[0].gold_path == (
        "<math_exp>48/2</math_exp>",
        "<math_exp>48+24</math_exp>",
        "<answer>72</answer>",
    )
    assert tasks[3].gold_path == ("<answer>1,200</answer>",)  # a solution without annotations
    assert [task.id for task in tasks] == ["gsm8k-0", "gsm8k-1", "gsm8k-2", "gsm8k-3"]


def test_gsm8k_gold_paths_replay_through_the_calculator_to_full_reward(tmp_path):
    env = GSM8KEnv(write_gsm8k(tmp_path))
    for index, task in enumerate(env.tasks):
        steps = play(env, index, task.gold_path)
        assert steps[-1][0] == 1.0
        annotations = task.meta["annotations"]
        assert len(steps) == len(annotations) + 1
        for (_, info), (_, result) in zip(steps, annotations, strict=False):
            shown = info["feedback"].split("->", 1)[1]
            assert numbers_equal(shown, result) or abs(float(shown) - float(result)) < 0.005


def test_gsm8k_annotation_the_calculator_does_not_reproduce_gives_an_answer_only_path(
    tmp_path, caplog
):
    records = [*GSM8K[:1], {"question": "What is 2 and 2?", "answer": "2+2 = <<2+2=5>>5\n#### 5"}]
    with caplog.at_level(logging.INFO, logger="swirl_envs.tasks"):
        tasks = load_gsm8k(write_gsm8k(tmp_path, records), calculator=Calculator())
    assert len(tasks[0].gold_path) == 3 and "gold_path_issue" not in tasks[0].meta
    assert tasks[1].gold_path == ("<answer>5</answer>",)
    assert "the annotation says 5" in tasks[1].meta["gold_path_issue"]
    assert "1 of 2 tasks" in caplog.text


def test_gsm8k_env_rewards_numeric_equality_and_reports_exact_match(tmp_path):
    env = GSM8KEnv(write_gsm8k(tmp_path))
    ((reward, info),) = play(env, 3, ["<answer>$1200.00</answer>"])
    assert reward == 1.0 and info["numeric"] == 1.0 and info["em"] == 0.0
    ((reward, _),) = play(env, 0, ["<answer>71</answer>"])
    assert reward == 0.0


def test_gsm8k_integers_must_be_equal_and_negative_answers_read_as_negative(tmp_path):
    records = [
        {
            "question": "A city had 1,449,999 people; one more moved in. How many now?",
            "answer": "1449999+1 = <<1449999+1=1450000>>1450000\n#### 1,450,000",
        },
        {
            "question": "Ann had $5 and spent $15. Her balance?",
            "answer": "<<5-15=-10>>-10\n#### -10",
        },
    ]
    env = GSM8KEnv(write_gsm8k(tmp_path, records))
    for index, answer, expected in [
        (0, "1,450,001", 0.0),
        (0, "1449999", 0.0),
        (0, "$1,450,000", 1.0),
        (1, "-$10", 1.0),
        (1, "\u221210", 1.0),
        (1, "$10", 0.0),
    ]:
        ((reward, _),) = play(env, index, [f"<answer>{answer}</answer>"])
        assert reward == expected, answer


def test_gsm8k_annotation_off_by_one_on_a_large_integer_is_not_reproduced(tmp_path):
    records = [{"question": "q", "answer": "<<1449999+2=1450000>>1450000\n#### 1450000"}]
    (task,) = load_gsm8k(write_gsm8k(tmp_path, records), calculator=Calculator())
    assert task.gold_path == ("<answer>1450000</answer>",)
    assert "gives '1450001'" in task.meta["gold_path_issue"]


# HotPotQA


def test_hotpotqa_loader_reads_the_json_array_and_jsonl_alike(tmp_path):
    from_json = load_hotpotqa(write_hotpotqa(tmp_path))
    from_jsonl = load_hotpotqa(write_hotpotqa(tmp_path, jsonl=True))
    assert from_json == from_jsonl
    task = from_json[0]
    assert task.id == "5a8b57f25542995d1e6f1371" and task.answers == ("yes",)
    assert task.supporting == ("Scott Derrickson", "Ed Wood")
    assert task.passages[2].text == "Scott Derrickson is an American director. He lives in LA."
    assert task.gold_path == (
        "<search_query>Scott Derrickson</search_query>",
        "<search_query>Ed Wood</search_query>",
        "<answer>yes</answer>",
    )
    assert task.meta["type"] == "comparison" and task.meta["level"] == "hard"
    assert from_json[1].supporting == ("Kiss and Tell (1945 film)", "Shirley Temple")


@pytest.mark.parametrize("name", sorted(QA_ENVS))
def test_gold_path_search_returns_each_supporting_passage_first_and_answer_scores_1(name, tmp_path):
    env = qa_env(name, tmp_path)
    for index, task in enumerate(env.tasks):
        steps = play(env, index, task.gold_path)
        targets = [next(p for p in task.passages if p.id == i) for i in task.meta["gold_targets"]]
        searches = [info for _, info in steps if info["tool"] == "search"]
        assert len(searches) == len(targets) >= 1
        for info, target in zip(searches, targets, strict=True):
            assert (
                info["feedback"]
                .split(" -> ", 1)[1]
                .startswith(f"{target.title}: {target.text[:40]}")
            )
        reward, info = steps[-1]
        assert reward == 1.0 and info["em"] == 1.0 and info["f1"] == 1.0
        assert task.meta["gold_queries_top1"] is True


def test_open_setting_searches_the_paragraphs_of_every_task(tmp_path):
    env = qa_env("hotpotqa", tmp_path, search="open")
    ((_, info),) = play(
        env, 0, ["<search_query>Shirley Temple</search_query>"]
    )  # task 1's paragraph
    assert "Chief of Protocol" in info["feedback"]
    distractor = qa_env("hotpotqa", tmp_path)
    ((_, info),) = play(distractor, 0, ["<search_query>Shirley Temple</search_query>"])
    assert "Chief of Protocol" not in info["feedback"]


# EM / F1 as the official HotPotQA script computes them (normalise: lower-case, drop
# punctuation, drop the words a/an/the, squash spaces; yes/no/noanswer need an exact match).
OFFICIAL_CASES = [
    # prediction, gold, em, f1, precision, recall
    ("The Beatles", "Beatles", 1.0, 1.0, 1.0, 1.0),
    ("beatles!", "the Beatles", 1.0, 1.0, 1.0, 1.0),
    ("Chief of Protocol", "chief   of protocol.", 1.0, 1.0, 1.0, 1.0),
    ("Chief of Protocol of the United States", "Chief of Protocol", 0.0, 2 * 0.5 / 1.5, 0.5, 1.0),
    ("Theatre Royal", "theatre", 0.0, 2 / 3, 0.5, 1.0),
    ("yes", "no", 0.0, 0.0, 0.0, 0.0),
    ("yes indeed", "yes", 0.0, 0.0, 0.0, 0.0),
    ("an apple a day", "apple day", 1.0, 1.0, 1.0, 1.0),
    ("Ann B. Davis", "Ann B Davis", 1.0, 1.0, 1.0, 1.0),
    ("1,066", "1066", 1.0, 1.0, 1.0, 1.0),
    ("New York City", "York", 0.0, 0.5, 1 / 3, 1.0),
    ("", "Paris", 0.0, 0.0, 0.0, 0.0),
]


@pytest.mark.parametrize(("prediction", "gold", "em", "f1", "precision", "recall"), OFFICIAL_CASES)
def test_qa_env_reward_is_em_and_info_has_f1_precision_recall_as_the_official_script(
    prediction, gold, em, f1, precision, recall, tmp_path
):
    env = qa_env("hotpotqa", tmp_path)
    scores = env.score_answer(Task(id="t", question="q", answers=(gold,)), prediction)
    assert scores["score"] == em and scores["em"] == em
    assert scores["f1"] == pytest.approx(f1)
    assert scores["precision"] == pytest.approx(precision)
    assert scores["recall"] == pytest.approx(recall)


def test_judge_hook_decides_the_reward_and_exact_match_stays_in_info(tmp_path):
    calls = []

    def judge(question, gold, prediction):
        calls.append((question, tuple(gold), prediction))
        return 0.25

    env = qa_env("hotpotqa", tmp_path, judge=judge)
    ((reward, info),) = play(env, 0, ["<answer>yes</answer>"])
    assert reward == 0.25 and info["judge"] == 0.25 and info["em"] == 1.0
    assert info["metrics"] == {
        "score": 0.25, "em": 1.0, "f1": 1.0, "precision": 1.0, "recall": 1.0, "judge": 0.25
    }  # fmt: skip
    assert calls == [(env.tasks[0].question, ("yes",), "yes")]


def test_answer_metrics_are_under_one_info_key_and_also_flat(tmp_path):
    env = qa_env("hotpotqa", tmp_path)
    search, answer = play(env, 0, ["<search_query>x</search_query>", "<answer>no</answer>"])
    assert search[1]["metrics"] == {}
    reward, info = answer
    assert info["metrics"] == env.score_answer(env.tasks[0], "no") and reward == info["score"]
    assert all(info[key] == value for key, value in info["metrics"].items())
    musique = qa_env("musique-full", tmp_path)
    ((_, info),) = play(musique, 0, ["<answer>unanswerable</answer>"])
    assert {"answerable", "predicted_answerable"} <= set(info["metrics"])


def test_search_env_uses_the_paper_prompt_with_its_step_budget_and_accepts_an_override(tmp_path):
    env = qa_env("hotpotqa", tmp_path, max_steps=4)
    assert env.system_prompt == SEARCH_PROMPT.format(max_steps=4)
    assert "up to 4 steps" in env.system_prompt and "<search_query>" in env.system_prompt
    custom = qa_env("hotpotqa", tmp_path, system_prompt="Search, then answer in {max_steps}.")
    assert custom.reset(options={"index": 0})[0].startswith("Search, then answer in 5.")


# MuSiQue


def test_musique_loader_reads_paragraphs_aliases_and_decomposition(tmp_path):
    task, other = load_musique(write_musique(tmp_path))
    assert task.answers == ("80", "eighty") and task.answerable
    assert [p.id for p in task.passages] == [f"2hop__1_2#{i}" for i in range(4)]
    assert [p.text for p in supporting_passages(task)][1].startswith(
        "Mercury is a chemical element"
    )
    assert task.meta["decomposition"] == (
        ("Roman messenger god named after", "Mercury"),
        ("What is the atomic number of Mercury ?", "80"),
    )
    assert other.gold_path == (
        "<search_query>Walkman</search_query>",
        "<search_query>Sony</search_query>",
        "<answer>Masaru Ibuka</answer>",
    )


def test_musique_ambiguous_title_gets_a_query_that_finds_the_supporting_paragraph(tmp_path):
    env = qa_env("musique", tmp_path)
    task = env.tasks[0]
    element = next(p for p in task.passages if "chemical element" in p.text)
    tool = env.tools[0]
    assert [hit.passage for hit in tool.rank("Mercury", task)] != [element]  # title: ambiguous
    query = task.gold_path[1].removeprefix("<search_query>").removesuffix("</search_query>")
    assert query == "Mercury What is the atomic number of Mercury ?"
    assert [hit.passage for hit in tool.rank(query, task)] == [element]


def test_musique_aliases_count_as_correct(tmp_path):
    env = qa_env("musique", tmp_path)
    ((reward, info),) = play(env, 0, ["<answer>Eighty</answer>"])
    assert reward == 1.0 and info["answerable"] == 1.0 and info["predicted_answerable"] == 1.0


# F1 as each dataset's official script computes it: HotPotQA's rule (a yes/no gold or
# prediction gets 0 unless both are equal) for HotPotQA and the scripts that copy it
# (BeerQA's eval_beerqa.py; CofCA is read as HotPotQA), SQuAD's for MuSiQue (its
# metrics/answer.py has no yes/no case, and two empty answers agree).
@pytest.mark.parametrize(
    ("name", "prediction", "gold", "em", "f1"),
    [
        ("musique", "yes it is", ("yes",), 0.0, 0.5),
        ("musique", "no", ("yes",), 0.0, 0.0),
        ("musique", "eighty years", ("80", "eighty"), 0.0, 2 / 3),
        ("musique", "the", ("a",), 1.0, 1.0),
        ("musique-full", "yes it is", ("yes",), 0.0, 0.5),
        ("hotpotqa", "yes it is", ("yes",), 0.0, 0.0),
        ("hotpotqa", "the", ("a",), 1.0, 0.0),
        ("beerqa", "yes it is", ("yes",), 0.0, 0.0),
        ("cofca", "yes it is", ("yes",), 0.0, 0.0),
    ],
)
def test_f1_follows_each_datasets_official_script(name, prediction, gold, em, f1, tmp_path):
    env = qa_env(name, tmp_path)
    scores = env.score_answer(Task(id="t", question="q", answers=gold), prediction)
    assert scores["f1"] == pytest.approx(f1)
    assert scores["em"] == scores["score"] == em


def test_musique_episode_reports_partial_f1_for_a_yes_answer_with_more_words(tmp_path):
    env = qa_env("musique", tmp_path)
    env.tasks[0] = Task(
        id="yes", question="Is it?", answers=("yes",), passages=env.tasks[0].passages
    )
    ((reward, info),) = play(env, 0, ["<answer>yes it is</answer>"])
    assert reward == 0.0 and info["em"] == 0.0
    assert info["f1"] == pytest.approx(0.5)
    assert info["precision"] == pytest.approx(1 / 3) and info["recall"] == 1.0


def test_musique_full_unanswerable_question_is_right_only_when_the_agent_says_so(tmp_path):
    env = qa_env("musique-full", tmp_path)
    index = next(i for i, task in enumerate(env.tasks) if not task.answerable)
    _, info = env.reset(options={"index": index})
    assert info["answerable"] is False
    assert env.task.answers == (UNANSWERABLE,)
    ((reward, info),) = play(env, index, ["<answer>Masaru Ibuka</answer>"])
    assert reward == 0.0 and info["answerable"] == 0.0 and info["predicted_answerable"] == 1.0
    ((reward, info),) = play(env, index, ["<answer>Unanswerable.</answer>"])
    assert reward == 1.0 and info["predicted_answerable"] == 0.0
    ((reward, _),) = play(env, 1, ["<answer>unanswerable</answer>"])  # an answerable question
    assert reward == 0.0


def test_fill_references_substitutes_earlier_answers_and_rejects_missing_ones():
    assert fill_references("Who founded #1 ?", ["Sony"]) == "Who founded Sony ?"
    assert (
        fill_references("#1 >> shares border with", ["Avery County"])
        == "Avery County shares border with"
    )
    with pytest.raises(ValueError, match="refers to #2"):
        fill_references("Where is #2 ?", ["Sony"])


# BeerQA and CofCA


def test_beerqa_loader_reads_the_v1_data_wrapper_and_keeps_every_gold_paragraph(tmp_path):
    tasks = load_beerqa(write_beerqa(tmp_path))
    assert [task.meta["src"] for task in tasks] == ["squad", "hotpotqa", "squad"]
    assert tasks[2].answers == ("the Danube", "Danube")
    assert len(tasks[2].supporting) == 2 and len(supporting_passages(tasks[2])) == 2
    assert tasks[2].gold_path[0] != tasks[2].gold_path[1]  # two gold paragraphs, one title


def test_beerqa_file_on_one_line_or_spread_over_many_reads_the_same(tmp_path):
    one_line = tmp_path / "one" / "beerqa_dev_v1.0.json"
    one_line.parent.mkdir()
    one_line.write_text("\n" + json.dumps(BEERQA), encoding="utf-8")
    assert load_beerqa(one_line) == load_beerqa(write_beerqa(tmp_path))


def test_cofca_loader_reads_hotpotqa_style_records_and_its_tolerated_variants(tmp_path):
    first, second = load_cofca(write_cofca(tmp_path))
    assert first.supporting == ("Glimmerphone", "Ada Lindqvist") and first.answers == ("Norway",)
    assert second.answers == ("curling",)
    assert [p.title for p in supporting_passages(second)] == ["Brightwater club", "Tom Reyes"]
    assert second.meta["sub_questions"][1] == ("What sport did Tom Reyes play?", "curling")


# Registration, files and sources


@pytest.mark.parametrize(
    ("env_id", "writer"),
    [
        ("swirl/GSM8K-v0", write_gsm8k),
        ("swirl/HotPotQA-v0", write_hotpotqa),
        ("swirl/MuSiQue-v0", write_musique),
        ("swirl/BeerQA-v0", write_beerqa),
        ("swirl/CofCA-v0", write_cofca),
    ],
)
def test_registered_ids_make_the_envs_from_a_data_path(env_id, writer, tmp_path):
    env = gym.make(env_id, data_path=str(writer(tmp_path)))
    task = env.unwrapped.tasks[0]
    env.reset(options={"index": 0})
    for action in task.gold_path:
        _, reward, terminated, _, _ = env.step(action)
    assert terminated and reward == 1.0


def test_a_folder_or_the_data_folder_is_searched_for_the_split_file(tmp_path, offline):
    write_hotpotqa(tmp_path / "mine")
    assert len(HotPotQAEnv(tmp_path / "mine").tasks) == 2
    write_gsm8k(offline / "gsm8k")
    assert len(GSM8KEnv().tasks) == len(GSM8K)


def test_without_data_or_network_the_error_says_which_file_to_get_and_where(offline):
    with pytest.raises(DatasetNotFoundError) as raised:
        GSM8KEnv()
    message = str(raised.value)
    assert "GSM8K test data not found" in message
    assert "Get test.jsonl from https://github.com/openai/grade-school-math" in message
    assert str(offline / "gsm8k" / "test.jsonl") in message
    assert "not reachable" in message and "openai/gsm8k" in message


def test_a_dataset_without_a_hub_copy_says_so(offline):
    with pytest.raises(
        DatasetNotFoundError, match="BeerQA is not on the Hugging Face Hub"
    ) as raised:
        BeerQAEnv()
    assert "beerqa_dev_v1.0.json" in str(raised.value)
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        CofCAEnv("/no/such/cofca.json")


def test_hub_fallback_converts_hub_rows_to_the_original_records(offline, monkeypatch):
    record = HOTPOTQA[1]
    row = {
        "id": record["_id"],
        "question": record["question"],
        "answer": record["answer"],
        "type": record["type"],
        "level": record["level"],
        "supporting_facts": {
            "title": [t for t, _ in record["supporting_facts"]],
            "sent_id": [s for _, s in record["supporting_facts"]],
        },
        "context": {
            "title": [t for t, _ in record["context"]],
            "sentences": [s for _, s in record["context"]],
        },
    }
    calls = []

    def load_dataset(path, name=None, split=None, **kwargs):
        calls.append((path, name, split))
        return [row]

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")  # offline mode: the Hub cache is tried
    (task,) = load_hotpotqa()
    assert calls == [("hotpotqa/hotpot_qa", "distractor", "validation")]
    assert task == load_hotpotqa(write_json(offline / "x.json", [record]))[0]


# Corrupt input


def test_a_line_that_is_not_json_names_the_file_and_line(tmp_path):
    path = write_jsonl(tmp_path / "test.jsonl", GSM8K[:2])
    path.write_text(path.read_text() + '{"question": "cut off\n', encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"test\.jsonl, line 3: not valid JSON"):
        load_gsm8k(path)


def test_a_record_missing_a_key_names_the_line_and_the_key(tmp_path):
    path = write_jsonl(tmp_path / "test.jsonl", [GSM8K[0], {"question": "no answer here"}])
    with pytest.raises(DataFormatError, match=r"line 2: missing key 'answer'"):
        load_gsm8k(path)
    bad_final = write_jsonl(tmp_path / "final.jsonl", [{"question": "q", "answer": "#### seven"}])
    with pytest.raises(
        DataFormatError, match=r"line 1: the final answer after '####' is not a number"
    ):
        load_gsm8k(bad_final)


def test_a_malformed_record_in_a_json_array_names_the_record_and_field(tmp_path):
    broken = json.loads(json.dumps(HOTPOTQA))
    broken[1]["context"][2] = "Shirley Temple"
    path = write_json(tmp_path / "dev.json", broken)
    with pytest.raises(
        DataFormatError, match=r"dev\.json, record 2: context item 3 must be a pair"
    ):
        load_hotpotqa(path)
    broken[1]["supporting_facts"] = [["Nobody", 0]]
    broken[1]["context"][2] = HOTPOTQA[1]["context"][2]
    with pytest.raises(DataFormatError, match="supporting title 'Nobody' is not a title"):
        load_hotpotqa(write_json(path, broken))


def test_a_json_file_that_does_not_parse_gives_line_and_column(tmp_path):
    path = tmp_path / "dev.json"
    path.write_text('[\n {"_id": "x",\n  "question": }\n]', encoding="utf-8")
    with pytest.raises(
        DataFormatError, match=r"dev\.json, record 1, line 3 column 15: not valid JSON"
    ):
        load_hotpotqa(path)


def test_a_file_that_is_not_utf8_text_is_named(tmp_path):
    path = tmp_path / "test.jsonl"
    path.write_bytes(b'{"question": "\xff\xfe"}\n')
    with pytest.raises(DataFormatError, match=r"test\.jsonl: not UTF-8 text"):
        load_gsm8k(path)


def test_musique_record_errors_name_the_nested_field(tmp_path):
    record = json.loads(json.dumps(MUSIQUE[0]))
    record["paragraphs"][1]["idx"] = "one"
    path = write_jsonl(tmp_path / "m.jsonl", [record])
    with pytest.raises(DataFormatError, match=r"line 1: 'paragraphs\[1\]\.idx' must be an integer"):
        load_musique(path)
    record["paragraphs"][1]["idx"] = 1
    record["question_decomposition"][1]["paragraph_support_idx"] = 7
    with pytest.raises(DataFormatError, match=r"paragraph_support_idx 7 is not a paragraph's idx"):
        load_musique(write_jsonl(path, [record]))


def test_skip_drops_bad_records_and_logs_how_many(tmp_path, caplog):
    path = write_jsonl(tmp_path / "test.jsonl", [GSM8K[0], {"question": "q"}, GSM8K[1]])
    path.write_text(path.read_text() + "not json\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="swirl_envs.tasks"):
        tasks = load_gsm8k(path, on_error="skip")
    assert [task.answer for task in tasks] == ["72", "10"]
    assert [task.id for task in tasks] == ["gsm8k-0", "gsm8k-2"]  # ids keep the file position
    assert "Skipped 2 of 4 records" in caplog.text and "line 2: missing key 'answer'" in caplog.text
    only_bad = write_jsonl(tmp_path / "bad.jsonl", [{"question": "q"}])
    with pytest.raises(DataFormatError, match="no usable GSM8K records"):
        load_gsm8k(only_bad, on_error="skip")


def test_unknown_split_and_on_error_are_refused(tmp_path):
    with pytest.raises(ValueError, match="choose one of"):
        load_hotpotqa(write_hotpotqa(tmp_path), split="validation")
    with pytest.raises(ValueError, match="on_error"):
        load_hotpotqa(write_hotpotqa(tmp_path), on_error="ignore")


# The benchmark script


def test_retrieval_recall_benchmark_measures_fixtures_and_writes_json(
    tmp_path, capsys, monkeypatch
):
    path = Path(__file__).parents[2] / "benchmarks" / "retrieval_recall.py"
    spec = importlib.util.spec_from_file_location("retrieval_recall", path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    out = tmp_path / "recall.json"
    results = module.main(
        [
            "--gsm8k", str(write_gsm8k(tmp_path)),
            "--hotpotqa", str(write_hotpotqa(tmp_path)),
            "--musique", str(write_musique(tmp_path)),
            "--ks", "1", "2",
            "--out", str(out),
        ]
    )  # fmt: skip
    assert json.loads(out.read_text()) == results
    rows = {(r["dataset"], r["setting"], r["queries"]): r for r in results["recall"]}
    assert rows[("hotpotqa", "distractor", "gold")]["recall@1"] == 1.0
    assert rows[("musique", "distractor", "gold")] == {
        "dataset": "musique", "setting": "distractor", "queries": "gold",
        "pairs": 4, "recall@1": 1.0, "recall@2": 1.0,
    }  # fmt: skip
    assert all(row["replay_reward"] == 1.0 for row in results["replay"])
    assert "| musique | open | question |" in capsys.readouterr().out
