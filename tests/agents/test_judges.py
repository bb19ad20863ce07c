"""Judges: verdict parsing, prompts, programmatic rules, the cache, agreement and the HF backend."""

from __future__ import annotations

import json
from dataclasses import replace

import gymnasium as gym
import pytest

import swirl_envs  # noqa: F401  (registers the env ids)
from swirl_agents.judges import (
    MATH_OUTCOME_PROMPT,
    MATH_PROCESS_PROMPT,
    OUTCOME_PROMPT,
    PROCESS_PROMPT,
    CachedJudge,
    JudgedTrajectory,
    Judgement,
    JudgementCache,
    JudgePrompt,
    OutcomeQuery,
    ProcessQuery,
    ProgrammaticJudge,
    confusion,
    default_prompts,
    judge_agreement,
    judge_trajectories,
    parse_verdict,
    process_queries,
)
from swirl_agents.judges.base import NO_ANSWER
from swirl_agents.judges.prompts import OUTCOME_FIELDS, PROCESS_FIELDS, process_fields
from swirl_agents.policies.scripted import NoisyOraclePolicy
from swirl_agents.rollout import rollout
from swirl_agents.store import TrajectoryStore, load_trajectories
from swirl_envs import Task
from swirl_envs.env import SwirlEnv
from swirl_envs.prompts import CALCULATOR_PROMPT
from swirl_envs.scoring import math_scores
from swirl_envs.tools.calculator import Calculator
from tests.agents.judge_fixtures import CountingJudge, play

# ---- verdict parsing ---------------------------------------------------------------------

PROCESS_PHRASINGS = [
    ("GOOD", True),
    ("bad", False),
    ("Good.", True),
    ("Verdict: GOOD", True),
    ("Verdict: BAD", False),
    ("**Verdict:** **BAD**", False),
    ("verdict - good", True),
    ("The verdict is good", True),
    ("Judgement: [BAD]", False),
    ("Final verdict: `GOOD`", True),
    ("The query targets the right entity.\n\nVerdict: GOOD", True),
    ("Bad idea? At first it seemed so.\nVerdict: GOOD", True),
    ("Initial verdict: BAD. On reflection, final verdict: GOOD.", True),
    ("The step computes the wrong quantity.\nBAD", False),
    ("I think this step is good.", True),
    ("This is a good, sensible query; a good step overall.", True),
]
OUTCOME_PHRASINGS = [
    ("YES", True),
    ("no.", False),
    ("Answer: Yes, it matches.", True),
    ("Verdict: NO", False),
    ("The prediction 10.00 equals 10.\nVerdict: YES", True),
    ("No, the prediction names another city.", False),
]
GARBAGE = [
    "",
    "   ",
    "asdf qwerty",
    "GOOD BAD",
    "It is not good.",
    "The step isn't good at all",
    "Goodness gracious, badly done",
    "maybe",
    "\n\n\n",
    "Verdict:",
]


@pytest.mark.parametrize("text, expected", PROCESS_PHRASINGS)
def test_process_verdicts_parse_in_many_phrasings(text, expected):
    assert parse_verdict(text, "GOOD", "BAD") is expected


@pytest.mark.parametrize("text, expected", OUTCOME_PHRASINGS)
def test_outcome_verdicts_parse_in_many_phrasings(text, expected):
    assert parse_verdict(text, "YES", "NO") is expected


@pytest.mark.parametrize("text", GARBAGE)
def test_garbage_and_ambiguous_verdicts_are_unparseable_not_guessed(text):
    assert parse_verdict(text, "GOOD", "BAD") is None


def test_yes_no_parser_ignores_good_bad_words():
    assert parse_verdict("GOOD", "YES", "NO") is None
    assert parse_verdict("the answer is no longer the same", "YES", "NO") is None


# ---- prompts and records -----------------------------------------------------------------


def test_default_prompts_are_the_papers_and_hold_their_fields():
    process = PROCESS_PROMPT.render(question="Who?", state="STATE-TEXT", action="ACTION-TEXT")
    assert (
        "My boss asked me to answer the following question with the help of a search engine: Who?"
        in process
    )
    assert "STATE-TEXT" in process and "My last message:\nACTION-TEXT" in process
    assert process.endswith('Explain your reasoning and then answer with either "GOOD" or "BAD".')
    math_process = MATH_PROCESS_PROMPT.render(question="Q", state="S", action="A")
    assert "with the help of a calculator" in math_process and "search" not in math_process
    direct = PROCESS_PROMPT.render(True, question="Q", state="S", action="A")
    assert direct.endswith('"GOOD" or "BAD" and nothing else.') and "reasoning" not in direct
    math = MATH_OUTCOME_PROMPT.render(question="Q", answers="10", prediction="$10")
    assert '"10", "10.00", "$10", and "$10.00" are all equivalent' in math
    assert "The answer key says: 10, and my answer is $10. Am I correct?" in math
    assert 'answer "YES" or "NO"' in OUTCOME_PROMPT.template
    for prompt in (PROCESS_PROMPT, MATH_PROCESS_PROMPT):
        prompt.check_fields(PROCESS_FIELDS)
    for prompt in (OUTCOME_PROMPT, MATH_OUTCOME_PROMPT):
        prompt.check_fields(OUTCOME_FIELDS)


def test_process_prompt_reads_the_question_from_the_transcript_when_not_given():
    fields = process_fields(
        "", "System.\n\nQuestion: Where is Zubran?\n<search_query>", "<answer>x</answer>"
    )
    assert fields["question"] == "Where is Zubran?"
    assert process_fields("Given?", "Question: other", "a")["question"] == "Given?"


def test_prompt_with_unknown_field_is_rejected_with_its_name():
    bad = JudgePrompt("Judge {action} given {gold}", "Judge {action}", "GOOD", "BAD")
    with pytest.raises(ValueError, match="gold"):
        bad.check_fields(frozenset({"state", "action"}))
    with pytest.raises(ValueError, match="not a valid format string"):
        JudgePrompt("Judge {action", "x", "GOOD", "BAD").check_fields(frozenset({"action"}))


def test_judgement_round_trips_and_rejects_malformed_records():
    judgement = Judgement(None, None, "???", "hf:x")
    assert Judgement.from_dict(json.loads(json.dumps(judgement.to_dict()))) == judgement
    with pytest.raises(ValueError, match="malformed"):
        Judgement.from_dict({"good": True})
    with pytest.raises(ValueError, match="good"):
        Judgement.from_dict({"good": "yes", "score": 1.0, "raw": "", "judge": "j"})


# ---- programmatic judges -----------------------------------------------------------------


@pytest.fixture(scope="module")
def math_env() -> SwirlEnv:
    return gym.make("swirl/SynthMath-v0", num_tasks=8, min_ops=3, max_ops=4, max_steps=6).unwrapped


@pytest.fixture(scope="module")
def hop_env() -> SwirlEnv:
    return gym.make("swirl/SynthHop-v0", num_tasks=4, min_hops=2, max_hops=3, max_steps=6).unwrapped


def calculator_env(task: Task) -> SwirlEnv:
    return SwirlEnv(
        [task], [Calculator()], system_prompt=CALCULATOR_PROMPT, max_steps=6, scorer=math_scores
    )


def verdicts(judge, trajectory):
    return [j.good for j in judge.judge_process(process_queries(trajectory))]


def test_gold_path_is_judged_good_step_by_step(math_env, hop_env):
    for env in (math_env, hop_env):
        judge = ProgrammaticJudge.from_env(env)
        trajectories = play(env, {i: env.tasks[i].gold_path for i in range(3)})
        for trajectory in trajectories:
            assert trajectory.score == 1.0
            assert verdicts(judge, trajectory) == [True] * len(trajectory.steps)


def test_math_steps_out_of_order_repeated_or_wrong_are_bad(math_env):
    judge = ProgrammaticJudge.from_env(math_env)
    task = math_env.tasks[0]
    first, second = task.gold_path[0], task.gold_path[1]
    answer = task.gold_path[-1]
    (trajectory,) = play(
        math_env,
        {0: [second, first, first, "<math_exp>1 / 0</math_exp>", "I am done.", answer]},
    )
    reasons = [j.raw for j in judge.judge_process(process_queries(trajectory))]
    assert [j.good for j in judge.judge_process(process_queries(trajectory))] == [
        False,  # step 2 before step 1: its input is not known yet
        True,
        False,  # repeats step 1
        False,  # calculator error
        False,  # malformed
        True,  # a correct answer is good even after mistakes
    ]
    assert "inputs are unknown" in reasons[0] and "repeats" in reasons[2]
    assert "calculator error" in reasons[3] and "malformed" in reasons[4]


def test_merging_two_operations_is_bad_but_a_reordered_expression_is_good():
    question = "Ada has 9 beads. They triple. They triple again. She keeps a third of them."
    gold = (
        "<math_exp>9 * 3</math_exp>",
        "<math_exp>27 * 3</math_exp>",
        "<math_exp>81 / 3</math_exp>",
    )
    task = Task("m", question, ("27",), gold_path=(*gold, "<answer>27</answer>"))
    env = calculator_env(task)
    judge = ProgrammaticJudge.from_env(env, process_rule="gold_path")
    (merged,) = play(env, {0: ["<math_exp>9 * 3 * 3</math_exp>", "<answer>81</answer>"]})
    assert verdicts(judge, merged) == [False, False]
    # 27 recurs as the value of steps 1 and 3: each is done in its turn.
    reordered = [
        "<math_exp>3 * 9</math_exp>",
        "<math_exp>27*3</math_exp>",
        "<math_exp>81/3</math_exp>",
    ]
    (recurring,) = play(env, {0: [*reordered, "<answer>$27.00</answer>"]})
    assert verdicts(judge, recurring) == [True, True, True, True]


def test_search_must_name_a_known_gold_entity_once(hop_env):
    judge = ProgrammaticJudge.from_env(hop_env)
    task = hop_env.tasks[0]
    first, second = task.meta["entities"][0], task.meta["entities"][1]
    (trajectory,) = play(
        hop_env,
        {0: [
            f"<search_query>{second}</search_query>",  # not revealed yet
            f"Who is it? <search_query>Tell me about {first.upper()}</search_query>",
            f"<search_query>{first}</search_query>",  # again
            "<search_query>weather in Paris</search_query>",
            "<answer>nobody</answer>",
        ]},
    )  # fmt: skip
    assert verdicts(judge, trajectory) == [False, True, False, False, False]


def test_from_env_picks_the_rule_the_tasks_declare_not_the_env_class(math_env, hop_env):
    assert math_env.unique_sound_path and hop_env.unique_sound_path
    assert ProgrammaticJudge.from_env(math_env).process_rule == "gold_path"
    assert ProgrammaticJudge.from_env(hop_env).process_rule == "gold_path"
    question = "Ada has 9 beads. They triple. How many now?"
    declared = Task("d", question, ("27",), ("<math_exp>9 * 3</math_exp>", "<answer>27</answer>"))
    custom = calculator_env(replace(declared, unique_sound_path=True))  # a plain SwirlEnv
    assert ProgrammaticJudge.from_env(custom).process_rule == "gold_path"
    # One task that does not declare it is enough to fall back to the calculator rule.
    mixed = SwirlEnv(
        [replace(declared, unique_sound_path=True), replace(declared, id="e")],
        [Calculator()], system_prompt=CALCULATOR_PROMPT, max_steps=6, scorer=math_scores,
    )  # fmt: skip
    assert not mixed.unique_sound_path
    assert ProgrammaticJudge.from_env(mixed).process_rule == "arithmetic"
    searching = SwirlEnv(hop_env.tasks[:1], hop_env.tools, system_prompt="{max_steps}", max_steps=5)
    assert ProgrammaticJudge.from_env(searching).process_rule == "gold_path"
    undeclared = SwirlEnv(
        [replace(hop_env.tasks[0], unique_sound_path=False)], hop_env.tools,
        system_prompt="{max_steps}", max_steps=5,
    )  # fmt: skip
    assert ProgrammaticJudge.from_env(undeclared).process_rule is None


def test_arithmetic_rule_checks_calculations_and_the_final_number():
    task = Task("g", "Tom has 48 clips and sells half. How many are left?", ("24",))
    judge = ProgrammaticJudge.from_env(calculator_env(task))
    assert judge.process_rule == "arithmetic"
    calls = [
        "<math_exp>48 - 24</math_exp>",
        "<math_exp>2 ** 99999999</math_exp>",
        "<math_exp>48/0</math_exp>",
    ]
    (trajectory,) = play(calculator_env(task), {0: [*calls, "<answer>24.00</answer>"]})
    assert verdicts(judge, trajectory) == [True, False, False, True]


def test_programmatic_outcome_treats_formatted_numbers_as_equal(math_env):
    judge = ProgrammaticJudge.from_env(math_env)
    queries = [OutcomeQuery("t", "q", ("10",), p) for p in ("10", "10.00", "$10", "11", None)]
    assert [j.good for j in judge.judge_outcome(queries)] == [True, True, True, False, False]


def test_programmatic_judge_names_an_unknown_task_and_a_missing_rule(math_env):
    judge = ProgrammaticJudge.from_env(math_env)
    with pytest.raises(ValueError, match="'nope'"):
        judge.judge_process([ProcessQuery("nope", 0, "", "<answer>1</answer>")])
    ruleless = ProgrammaticJudge({}, [], process_rule=None)
    with pytest.raises(ValueError, match="no programmatic process rule"):
        ruleless.judge_process([ProcessQuery("t", 0, "", "<answer>1</answer>")])
    assert ruleless.judge_outcome([OutcomeQuery("t", "q", ("Paris",), "the Paris")])[0].good


def test_noisy_oracle_mistakes_are_caught_where_the_value_changes(math_env):
    result = rollout(math_env, NoisyOraclePolicy(0.3), samples=3, seed=1, progress=False)
    judge = ProgrammaticJudge.from_env(math_env)
    tasks = {task.id: task for task in math_env.tasks}
    checked = 0
    for trajectory in result.trajectories:
        gold = tasks[trajectory.task_id].gold_path
        good = verdicts(judge, trajectory)
        for k, step in enumerate(trajectory.steps):
            if k >= len(gold) - 1 or step.action != gold[k]:
                break  # compare calculations only, up to the first deviation
            assert good[k], (trajectory.task_id, k, step.action)
        else:
            continue
        if k < len(gold) - 1 and step.tool == "calculator":
            deviated = Calculator()(step.tool_input, tasks[trajectory.task_id]).text
            expected = Calculator()(
                gold[k][len("<math_exp>") : -len("</math_exp>")], tasks[trajectory.task_id]
            ).text
            if deviated != expected:
                assert good[k] is False
                checked += 1
    assert checked >= 3


# ---- agreement -------------------------------------------------------------------------


def test_agreement_counts_false_positives_and_negatives():
    def j(good):
        return Judgement(good, None, "", "x")

    truth = [j(True)] * 4 + [j(False)] * 6
    judged = [j(True), j(True), j(False), j(None)] + [
        j(True),
        j(False),
        j(False),
        j(False),
        j(False),
        j(None),
    ]
    report = confusion(judged, truth)
    assert (report["tp"], report["fn"], report["fp"], report["tn"]) == (2, 1, 1, 4)
    assert report["unparseable"] == 2 and report["judged"] == 8
    assert report["fpr"] == pytest.approx(1 / 5) and report["fnr"] == pytest.approx(1 / 3)
    assert report["accuracy"] == pytest.approx(6 / 8)


def test_judge_agreement_against_programmatic_truth(math_env):
    truth = ProgrammaticJudge.from_env(math_env)
    trajectories = play(
        math_env, {0: math_env.tasks[0].gold_path, 1: ["<math_exp>1+1</math_exp>"] * 6}
    )
    queries = [q for t in trajectories for q in process_queries(t)]

    class AlwaysGood(CountingJudge):
        def judge_process(self, queries):
            return [Judgement(True, 1.0, "GOOD", self.name) for _ in queries]

    report = judge_agreement(AlwaysGood(), truth, queries, [])
    positives = len(trajectories[0].steps)
    assert report["process"]["fpr"] == 1.0 and report["process"]["fnr"] == 0.0
    assert report["process"]["tp"] == positives and report["process"]["fp"] == 6
    assert "outcome" not in report


# ---- cache -----------------------------------------------------------------------------


def queries(n: int) -> list[ProcessQuery]:
    actions = ["GOOD", "BAD", "garbage"]
    return [ProcessQuery("t", k, f"state {k}", actions[k % 3]) for k in range(n)]


def test_cache_answers_repeats_without_calling_the_judge(tmp_path):
    inner = CountingJudge()
    with JudgementCache(tmp_path / "c.sqlite") as cache:
        judge = CachedJudge(inner, cache)
        first = judge.judge_process(queries(6))
        assert (cache.hits, cache.misses, len(inner.process_calls)) == (0, 6, 6)
        again = judge.judge_process(queries(9))
        assert again[:6] == first
        assert (cache.hits, cache.misses, len(inner.process_calls)) == (6, 9, 9)
        assert cache.unparseable() == 3  # unparseable verdicts are cached as such
    with JudgementCache(tmp_path / "c.sqlite") as reopened:
        replayed = CachedJudge(CountingJudge(), reopened).judge_process(queries(9))
        assert replayed == again and reopened.hits == 9 and reopened.misses == 0
        assert replayed[2].good is None and replayed[2].raw == "garbage"


def test_cache_key_covers_judge_prompt_and_inputs(tmp_path):
    cache = JudgementCache(tmp_path / "c.sqlite")
    CachedJudge(CountingJudge(), cache).judge_process(queries(3))
    other_prompt = CountingJudge(template="v2")
    CachedJudge(other_prompt, cache).judge_process(queries(3))
    other_name = CountingJudge(name="other")
    CachedJudge(other_name, cache).judge_process(queries(3))
    assert len(other_prompt.process_calls) == 3 and len(other_name.process_calls) == 3
    changed = [ProcessQuery("t", 0, "state 0 changed", "GOOD")]
    CachedJudge(other_name, cache).judge_process(changed)
    assert len(other_name.process_calls) == 4
    assert len(cache) == 10


def test_cache_judges_duplicates_in_a_batch_once(tmp_path):
    inner = CountingJudge()
    cache = JudgementCache(":memory:")
    results = CachedJudge(inner, cache).judge_process(queries(2) * 3)
    assert len(inner.process_calls) == 2 and [r.good for r in results] == [True, False] * 3


def test_corrupt_cache_file_is_reported_by_path(tmp_path):
    path = tmp_path / "broken.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ValueError, match="broken.sqlite"):
        JudgementCache(path)


# ---- trajectories ----------------------------------------------------------------------


def test_judged_trajectories_round_trip_through_the_store(tmp_path, math_env):
    trajectories = play(
        math_env, {0: math_env.tasks[0].gold_path, 1: ["<math_exp>2+2</math_exp>"] * 6}
    )
    truth = ProgrammaticJudge.from_env(math_env)
    cache = JudgementCache(tmp_path / "c.sqlite")
    judged = judge_trajectories(trajectories, truth, truth, cache)
    assert [j.good for j in judged[0].process] == [True] * len(trajectories[0].steps)
    assert judged[0].outcome.good is True and judged[1].outcome.good is False
    assert judged[1].outcome.raw == NO_ANSWER
    with TrajectoryStore(tmp_path / "judged.jsonl") as store:
        store.append(item.to_trajectory() for item in judged)
    reloaded = [
        JudgedTrajectory.from_trajectory(t) for t in load_trajectories(tmp_path / "judged.jsonl")
    ]
    assert [(r.process, r.outcome) for r in reloaded] == [(j.process, j.outcome) for j in judged]
    assert reloaded[0].step_scores == [1.0] * len(trajectories[0].steps)
    assert "judgements" not in trajectories[0].meta  # the input is not modified
    misses = cache.misses
    judge_trajectories(trajectories, truth, truth, cache)
    assert cache.misses == misses


def test_adding_an_outcome_judge_keeps_stored_process_judgements(math_env):
    (trajectory,) = play(math_env, {0: math_env.tasks[0].gold_path})
    truth = ProgrammaticJudge.from_env(math_env)
    (judged,) = judge_trajectories([trajectory], process_judge=truth)
    (both,) = judge_trajectories([judged.to_trajectory()], outcome_judge=CountingJudge())
    assert both.process == judged.process and both.outcome is not None
    with pytest.raises(ValueError, match="process judge, an outcome judge"):
        judge_trajectories([trajectory])


def test_malformed_stored_judgements_are_rejected(math_env):
    (trajectory,) = play(math_env, {0: math_env.tasks[0].gold_path})
    trajectory.meta["judgements"] = {"process": [], "outcome": None}
    with pytest.raises(ValueError, match="one process judgement per step"):
        JudgedTrajectory.from_trajectory(trajectory)


# ---- Hugging Face backend --------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_judge_path(tmp_path_factory):
    pytest.importorskip("torch")
    from swirl_agents.tiny import build_tiny_model

    texts = [PROCESS_PROMPT.template, PROCESS_PROMPT.direct_template, OUTCOME_PROMPT.template,
             OUTCOME_PROMPT.direct_template, "Verdict: GOOD BAD YES NO"] * 4  # fmt: skip
    return build_tiny_model(
        tmp_path_factory.mktemp("judge"), texts, vocab_size=320, max_positions=1024
    )


def hf_queries() -> list[ProcessQuery]:
    state = "System.\n\nQuestion: Mira has 12 apples and buys 3 more. How many now?\n"
    actions = [
        "<math_exp>12 + 3</math_exp>",
        "<answer>15</answer>",
        "nonsense",
        "<math_exp>1/0</math_exp>",
    ]
    return [ProcessQuery("t", k, state * (k + 1), action) for k, action in enumerate(actions)]


def test_hf_logit_judge_gives_soft_scores_independent_of_batching(tiny_judge_path):
    from swirl_agents.judges import HFJudge

    batched = HFJudge(tiny_judge_path, mode="logits", batch_size=4).judge_process(hf_queries())
    single = HFJudge(tiny_judge_path, mode="logits", batch_size=1).judge_process(hf_queries())
    for a, b in zip(batched, single, strict=True):
        assert 0.0 < a.score < 1.0 and a.good == (a.score >= 0.5)
        assert a.score == pytest.approx(b.score, abs=1e-5)
        assert a.raw.startswith("P(GOOD)=") and a.judge == f"hf:{tiny_judge_path}"
    assert len({round(j.score, 6) for j in batched}) > 1  # the score depends on the input
    always = HFJudge(tiny_judge_path, mode="logits", threshold=0.0).judge_process(hf_queries())
    assert all(j.good for j in always)


def test_hf_logit_score_is_the_softmax_over_the_two_verdict_tokens(tiny_judge_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from swirl_agents.judges import HFJudge

    judge = HFJudge(tiny_judge_path, mode="logits")
    query = hf_queries()[0]
    tokenizer = AutoTokenizer.from_pretrained(tiny_judge_path)
    model = AutoModelForCausalLM.from_pretrained(tiny_judge_path)
    body = PROCESS_PROMPT.render(True, **process_fields("", query.state, query.action))
    text = tokenizer.apply_chat_template([{"role": "user", "content": body}], tokenize=False,
                                         add_generation_prompt=True) + "Verdict:"  # fmt: skip
    good, bad = (tokenizer(" " + w, add_special_tokens=False)["input_ids"] for w in ("GOOD", "BAD"))
    shared = 0
    while good[shared] == bad[shared]:
        shared += 1
    ids = tokenizer(text, add_special_tokens=False)["input_ids"] + good[:shared]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, -1]
    expected = torch.softmax(torch.stack([logits[good[shared]], logits[bad[shared]]]), -1)[0]
    assert judge.judge_process([query])[0].score == pytest.approx(float(expected), abs=1e-5)


def test_hf_generating_judge_parses_its_own_text(tiny_judge_path):
    from swirl_agents.judges import HFJudge

    judge = HFJudge(tiny_judge_path, mode="generate", batch_size=3, max_new_tokens=6)
    results = judge.judge_process(hf_queries())
    assert len(results) == 4
    for result in results:
        assert isinstance(result.raw, str)
        assert result.good is parse_verdict(result.raw, "GOOD", "BAD")
        assert result.score == (None if result.good is None else float(result.good))
        assert len(judge.tokenizer(result.raw, add_special_tokens=False)["input_ids"]) <= 6 + 1
    outcomes = judge.judge_outcome(
        [OutcomeQuery("t", "q", ("15",), "15"), OutcomeQuery("t", "q", ("15",), None)]
    )
    assert outcomes[1] == Judgement(False, 0.0, NO_ANSWER, judge.name)


def test_hf_judge_cuts_long_states_and_marks_oversized_actions(tiny_judge_path):
    from swirl_agents.judges import HFJudge

    judge = HFJudge(tiny_judge_path, mode="logits", max_prompt_tokens=700)
    long_state = "Question: Mira has 12 apples?\n" + "12 + 3 -> 15\n" * 2000
    fits, too_long = judge.judge_process([
        ProcessQuery("t", 0, long_state, "<math_exp>12 + 3</math_exp>"),
        ProcessQuery("t", 0, "short", "<math_exp>1+1</math_exp>" * 400),
    ])  # fmt: skip
    assert 0.0 < fits.score < 1.0
    assert too_long.good is None and "max_prompt_tokens" in too_long.raw


def test_hf_judge_is_cached_across_instances(tiny_judge_path, tmp_path):
    from swirl_agents.judges import HFJudge

    cache = JudgementCache(tmp_path / "hf.sqlite")
    first = CachedJudge(HFJudge(tiny_judge_path, mode="logits"), cache).judge_process(hf_queries())
    again = CachedJudge(HFJudge(tiny_judge_path, mode="logits"), cache).judge_process(hf_queries())
    assert again == first and cache.hits == 4 and cache.misses == 4
    other_mode = CachedJudge(HFJudge(tiny_judge_path, mode="generate", max_new_tokens=2), cache)
    other_mode.judge_process(hf_queries()[:1])
    assert cache.misses == 5


def test_hf_judge_rejects_verdict_words_it_cannot_tell_apart(tiny_judge_path):
    from swirl_agents.judges import HFJudge

    same = JudgePrompt("{action}", "{action}", "GOOD", "GOOD")
    with pytest.raises(ValueError, match="indistinguishable"):
        HFJudge(tiny_judge_path, mode="logits", process_prompt=same)


# ---- OpenAI-compatible endpoint --------------------------------------------------------


def endpoint_reply(body: dict) -> str:
    prompt = body["messages"][0]["content"]
    if "grade the answer" in prompt:
        return "The answer key matches.\nYES" if "my answer is 10." in prompt else "It differs. NO"
    action = prompt.split("My last message:\n", 1)[1].split("\n", 1)[0]
    if "garbage" in action:
        return "I am not sure what to make of this."
    return "The calculation helps.\n**GOOD**" if "<math_exp>" in action else "Verdict: BAD"


def endpoint_queries() -> list[ProcessQuery]:
    actions = [
        "<math_exp>2+2</math_exp>",
        "<answer>5</answer>",
        "garbage",
        "<math_exp>3*3</math_exp>",
    ]
    return [ProcessQuery("t", k, "Question: What is 2+2?\n", a) for k, a in enumerate(actions)]


def test_endpoint_judge_sends_concurrent_greedy_requests_and_parses_replies():
    from swirl_agents.judges import EndpointJudge
    from tests.agents.fault_server import FaultServer

    with FaultServer(endpoint_reply, faults=["slow:0.3"] * 4) as server:
        with EndpointJudge(server.base_url, "judge-model", concurrency=4) as judge:
            results = judge.judge_process(endpoint_queries())
            outcomes = judge.judge_outcome(
                [OutcomeQuery("t", "q", ("10",), p) for p in ("10", "12", None)]
            )
    assert [r.good for r in results] == [True, False, None, True]
    assert results[2].raw == "I am not sure what to make of this." and results[2].score is None
    assert [o.good for o in outcomes] == [True, False, False]
    assert len(server.requests) == 6  # no request for the missing answer
    assert server.max_in_flight > 1
    assert all(r["temperature"] == 0.0 and r["model"] == "judge-model" for r in server.requests)
    assert judge.name == f"{'openai:'}{server.base_url}#judge-model"


def test_endpoint_judge_retries_and_a_dead_server_caches_nothing():
    from swirl_agents.judges import EndpointJudge
    from swirl_agents.policies.openai_compat import PolicyError
    from tests.agents.fault_server import FaultServer

    with FaultServer(endpoint_reply, faults=["503"]) as server:
        with EndpointJudge(server.base_url, "m", max_retries=2) as judge:
            assert judge.judge_process(endpoint_queries()[:1])[0].good is True
    with FaultServer(endpoint_reply, faults=["500"] * 10) as server:
        cache = JudgementCache(":memory:")
        with EndpointJudge(server.base_url, "m", max_retries=0) as judge:
            with pytest.raises(PolicyError):
                CachedJudge(judge, cache).judge_process(endpoint_queries()[:1])
        assert len(cache) == 0


def test_default_prompts_follow_the_env_tools(math_env, hop_env):
    assert default_prompts(math_env) == {
        "process_prompt": MATH_PROCESS_PROMPT,
        "outcome_prompt": MATH_OUTCOME_PROMPT,
    }
    assert default_prompts(hop_env) == {
        "process_prompt": PROCESS_PROMPT,
        "outcome_prompt": OUTCOME_PROMPT,
    }


def test_endpoint_judge_speaks_the_completions_api_for_base_models():
    from swirl_agents.judges import EndpointJudge
    from tests.agents.fault_server import FaultServer

    with FaultServer(lambda body: " GOOD") as server:
        with EndpointJudge(server.base_url, "base", api="completions", max_state_chars=50) as judge:
            long_state = "Question: What is 2+2?\n" + "x" * 500
            (result,) = judge.judge_process(
                [ProcessQuery("t", 0, long_state, "<answer>4</answer>")]
            )
    assert result.good is True
    prompt = server.requests[0]["prompt"]
    assert "What is 2+2?" in prompt and "[...]\n" + "x" * 50 in prompt and "x" * 51 not in prompt


def test_make_judge_builds_each_backend_with_the_envs_prompts(tmp_path):
    import gymnasium as gym

    from swirl_agents.judges import MATH_PROCESS_PROMPT, ProgrammaticJudge, make_judge

    env = gym.make("swirl/SynthMath-v0", num_tasks=20).unwrapped
    assert isinstance(make_judge("programmatic", env), ProgrammaticJudge)
    endpoint = make_judge("openai:http://127.0.0.1:9/v1", env, openai={"model": "m"})
    assert endpoint.prompts["process"] == MATH_PROCESS_PROMPT
    endpoint.close()
    for bad in ("gpt4", "hf:", "openai"):
        with pytest.raises(ValueError, match="unknown judge"):
            make_judge(bad, env)
    with pytest.raises(ValueError, match="model"):
        make_judge("openai:http://127.0.0.1:9/v1", env)
