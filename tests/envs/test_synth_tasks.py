"""The generated tasks: SynthMath (calculator word problems) and SynthHop (multi-hop search)."""

from __future__ import annotations

import itertools
import re

import gymnasium as gym
import pytest

import swirl_envs  # noqa: F401  (registers the env ids)
from swirl_envs.tasks.synth_hop import (
    COMPANY_SUFFIXES,
    ENTITY_TYPES,
    RELATIONS,
    WORLD_SIZES,
    SynthHopEnv,
    _generate_world,
    build_world,
    generate_synth_hop,
    relation_chains,
)
from swirl_envs.tasks.synth_math import (
    INVERSE_OPERATOR,
    PHRASINGS,
    SynthMathEnv,
    apply_operator,
    generate_synth_math,
    sequence_key,
    split_of,
)

GOLD_REPLAYS = 500


def _mentions(text: str, name: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text) is not None


def _replay(env, index: int, actions) -> list[tuple[float, bool, bool, dict]]:
    env.reset(options={"index": index})
    steps = []
    for action in actions:
        _, reward, terminated, truncated, info = env.step(action)
        steps.append((reward, terminated, truncated, info))
    return steps


def _wrong_operator_replay(meta: dict, confused: set[int]) -> int | None:
    """The final value when the steps in ``confused`` use the inverse operator."""
    value = meta["values"][0]
    for step, (operator, operand) in enumerate(
        zip(meta["operators"], meta["operands"], strict=True)
    ):
        value = apply_operator(
            INVERSE_OPERATOR[operator] if step in confused else operator, value, operand
        )
        if value is None:
            return None
    return value


# --- SynthMath ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def math_env() -> SynthMathEnv:
    return SynthMathEnv(num_tasks=GOLD_REPLAYS)


def test_math_gold_path_scores_one_with_the_expected_calculator_results(math_env):
    for index, task in enumerate(math_env.tasks):
        steps = _replay(math_env, index, task.gold_path)
        values = task.meta["values"]
        for step, (reward, terminated, truncated, info) in enumerate(steps[:-1]):
            expression = re.fullmatch(r"<math_exp>(.*)</math_exp>", task.gold_path[step]).group(1)
            assert info["feedback"] == f"\n{expression} -> {values[step + 1]}\n", task.id
            assert (reward, terminated, truncated) == (0.0, False, False)
        reward, terminated, truncated, info = steps[-1]
        assert (reward, terminated, truncated) == (1.0, True, False), task.id
        assert info["answer"] == task.answer == str(values[-1])


def test_math_wrong_answer_scores_zero(math_env):
    for index in range(20):
        task = math_env.tasks[index]
        wrong = f"<answer>{int(task.answer) + 1}</answer>"
        ((reward, terminated, _, _),) = _replay(math_env, index, [wrong])
        assert (reward, terminated) == (0.0, True)


def test_math_same_seed_gives_the_same_tasks_and_another_seed_different_ones():
    first = generate_synth_math(200, seed=3)
    again = generate_synth_math(200, seed=3)
    other = generate_synth_math(200, seed=4)
    assert first == again
    assert [t.meta for t in first] == [t.meta for t in again]
    assert [t.question for t in first] != [t.question for t in other]


def test_math_splits_share_no_question_and_no_phrasing_sequence():
    train = generate_synth_math(1000, split="train")
    test = generate_synth_math(300, split="test")
    assert not {t.question for t in train} & {t.question for t in test}
    train_keys = {sequence_key(t.meta["phrasings"]) for t in train}
    test_keys = {sequence_key(t.meta["phrasings"]) for t in test}
    assert not train_keys & test_keys
    assert all(split_of(key) == "test" for key in test_keys)
    # Same seed, different split: separate streams, not the same problems relabelled.
    assert train[0].question != test[0].question


def test_math_tasks_are_distinct_and_meta_describes_every_step():
    tasks = generate_synth_math(300, seed=1)
    assert len({t.question for t in tasks}) == len(tasks)
    for task in tasks:
        meta = task.meta
        count = meta["num_ops"]
        assert len(meta["operators"]) == len(meta["phrasings"]) == len(meta["operands"]) == count
        assert len(meta["values"]) == count + 1 and len(task.gold_path) == count + 1
        assert meta["split"] == "train" and task.question.startswith(meta["character"])
        for step, key in enumerate(meta["phrasings"]):
            phrasing = PHRASINGS[key]
            assert meta["operators"][step] == phrasing.operator
            if phrasing.operand is not None:
                assert meta["operands"][step] == phrasing.operand
            a, b = meta["values"][step], meta["operands"][step]
            assert apply_operator(phrasing.operator, a, b) == meta["values"][step + 1]
            assert task.gold_path[step] == f"<math_exp>{a} {phrasing.operator} {b}</math_exp>"
        assert task.gold_path[-1] == f"<answer>{meta['values'][-1]}</answer>"


def test_math_every_phrasing_occurs_in_both_splits():
    for split in ("train", "test"):
        used = {key for t in generate_synth_math(300, split=split) for key in t.meta["phrasings"]}
        assert used == set(PHRASINGS)


@pytest.mark.parametrize(
    "knobs",
    [
        {"min_ops": 2, "max_ops": 8},
        {"min_ops": 3, "max_ops": 3, "max_value": 30, "max_operand": 5, "max_factor": 2},
        {"min_ops": 1, "max_ops": 4, "max_value": 1000, "max_operand": 100, "max_factor": 9},
    ],
)
def test_math_knobs_bound_operation_count_and_number_size(knobs):
    tasks = generate_synth_math(200, split="test", **knobs)
    counts = {t.meta["num_ops"] for t in tasks}
    assert counts == set(range(knobs["min_ops"], knobs["max_ops"] + 1))
    max_value = knobs.get("max_value", 100)
    for task in tasks:
        meta = task.meta
        assert all(1 <= value <= max_value for value in meta["values"])
        for operator, operand in zip(meta["operators"], meta["operands"], strict=True):
            if operator in "+-":
                assert 1 <= operand <= knobs.get("max_operand", 20)
            else:
                assert 2 <= operand <= knobs.get("max_factor", 5)


def test_math_phrasings_knob_restricts_the_wording():
    tasks = generate_synth_math(100, phrasings=["give_away", "share_equally", "buy_more"])
    assert {key for t in tasks for key in t.meta["phrasings"]} == {
        "give_away",
        "share_equally",
        "buy_more",
    }
    excluded = ("finds", "a friend gives", "sells", "loses", "times as many", "doubles", "triples",
                "piles", "half")  # fmt: skip
    assert not any(words in t.question.lower() for t in tasks for words in excluded)


def test_math_any_single_wrong_operator_still_gives_a_valid_continuation():
    for task in generate_synth_math(300, seed=2):
        for step in range(task.meta["num_ops"]):
            assert _wrong_operator_replay(task.meta, {step}) is not None, (task.id, step)


def test_math_phrasing_misconceptions_keep_problems_valid():
    # "gives away n" read as + and "shares equally among n" read as *, at every such step.
    tasks = generate_synth_math(300, seed=5)
    confused_problems = 0
    for task in tasks:
        steps = {
            i
            for i, key in enumerate(task.meta["phrasings"])
            if key in ("give_away", "share_equally")
        }
        if steps:
            confused_problems += 1
            assert _wrong_operator_replay(task.meta, steps) not in (None, int(task.answer))
    assert confused_problems > len(tasks) / 3


@pytest.mark.parametrize(
    "knobs, message",
    [
        ({"split": "validation"}, "split"),
        ({"min_ops": 0}, "min_ops"),
        ({"min_ops": 5, "max_ops": 3}, "min_ops"),
        ({"max_value": 1}, "max_value"),
        ({"phrasings": ["give_away", "borrow"]}, "borrow"),
        ({"max_factor": 2, "phrasings": ["triple"]}, "max_factor"),
        # 12 characters x 12 items x one start value: 144 distinct problems.
        (
            {"min_ops": 1, "max_ops": 1, "phrasings": ["halve"], "max_value": 3, "n": 200},
            "Could only",
        ),
    ],
)
def test_math_bad_knobs_raise_a_clear_error(knobs, message):
    n = knobs.pop("n", 50)
    with pytest.raises(ValueError, match=message):
        generate_synth_math(n, **knobs)


def test_math_env_needs_room_for_every_calculation_and_the_answer():
    with pytest.raises(ValueError, match="max_steps"):
        SynthMathEnv(num_tasks=5, max_ops=8, max_steps=8)
    env = SynthMathEnv(num_tasks=5, max_ops=8, max_steps=9)
    task = env.tasks[0]
    assert _replay(env, 0, task.gold_path)[-1][0] == 1.0


def test_math_env_is_registered_and_takes_its_knobs():
    env = gym.make("swirl/SynthMath-v0", split="test", num_tasks=7, max_ops=3)
    assert len(env.unwrapped.tasks) == 7
    assert all(t.meta["split"] == "test" and t.meta["num_ops"] <= 3 for t in env.unwrapped.tasks)
    assert env.unwrapped.tools[0].name == "calculator"


# --- SynthHop -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hop_env() -> SynthHopEnv:
    return SynthHopEnv(num_tasks=GOLD_REPLAYS)


def test_hop_gold_path_scores_one_and_each_search_returns_the_next_passage(hop_env):
    world = hop_env.world
    for index, task in enumerate(hop_env.tasks):
        steps = _replay(hop_env, index, task.gold_path)
        chain = task.meta["entities"]
        for step, (reward, terminated, truncated, info) in enumerate(steps[:-1]):
            passage = world.entities[chain[step]].passage
            assert info["feedback"] == f"\n{chain[step]} -> {chain[step]}: {passage.text}\n", (
                task.id
            )
            assert _mentions(passage.text, chain[step + 1])
            assert (reward, terminated, truncated) == (0.0, False, False)
        reward, terminated, truncated, info = steps[-1]
        assert (reward, terminated, truncated) == (1.0, True, False), task.id
        assert info["answer"] == task.answer == chain[-1]


def test_hop_wrong_answer_scores_zero(hop_env):
    for index in range(20):
        task = hop_env.tasks[index]
        wrong = next(name for name in task.meta["entities"] if name != task.answer)
        ((reward, terminated, _, info),) = _replay(hop_env, index, [f"<answer> {wrong}</answer>"])
        assert (reward, terminated, info["em"]) == (0.0, True, 0.0)


def test_hop_same_seed_gives_the_same_tasks_and_another_seed_different_ones():
    first = generate_synth_hop(200, seed=3)
    again = generate_synth_hop(200, seed=3)
    other = generate_synth_hop(200, seed=4)
    assert first == again
    assert [t.meta for t in first] == [t.meta for t in again]
    assert [t.question for t in first] != [t.question for t in other]


def test_hop_world_is_deterministic_with_unique_names():
    world = build_world()
    assert build_world(0, **WORLD_SIZES) is world  # one cache entry, however it is asked for
    rebuilt = _generate_world.__wrapped__(0, *WORLD_SIZES.values())  # bypass the cache
    assert world.passages == rebuilt.passages
    assert _generate_world.__wrapped__(1, *WORLD_SIZES.values()).passages != world.passages
    titles = [passage.title for passage in world.passages]
    assert len(titles) == len(set(titles)) == len(world.entities) >= 300
    words = [word for title in titles for word in title.split() if word not in COMPANY_SUFFIXES]
    assert len(words) == len(set(words))  # one use per syllable word: names never overlap
    for entity in world.entities.values():
        assert entity.type in ENTITY_TYPES and entity.passage.title == entity.name
        for name, relation in RELATIONS.items():
            if relation.domain == entity.type:
                value = entity.facts[name]
                assert world.entities[value].type == relation.range
                assert _mentions(entity.passage.text, value)


def test_hop_confusable_relations_always_give_a_different_valid_value():
    world = build_world()
    for first, second in [("born_in", "lives_in"), ("founded_by", "ceo")]:
        assert (RELATIONS[first].domain, RELATIONS[first].range) == (
            RELATIONS[second].domain,
            RELATIONS[second].range,
        )
        for entity in world.of_type(RELATIONS[first].domain):
            assert entity.facts[first] != entity.facts[second]


def test_hop_splits_share_the_world_but_no_question_or_start_entity():
    train = generate_synth_hop(1000, split="train")
    test = generate_synth_hop(300, split="test")
    assert not {t.question for t in train} & {t.question for t in test}
    train_starts = {t.meta["entities"][0] for t in train}
    test_starts = {t.meta["entities"][0] for t in test}
    assert not train_starts & test_starts
    world = build_world()
    assert all(world.entities[name].split == "test" for name in test_starts)
    # The same world: test chains pass through entities that train questions also visit.
    assert {n for t in test for n in t.meta["entities"][1:]} & {
        n for t in train for n in t.meta["entities"]
    }


def test_hop_questions_need_every_search():
    for task in generate_synth_hop(300, split="test", seed=2):
        chain = task.meta["entities"]
        assert _mentions(task.question, chain[0])
        assert not any(_mentions(task.question, name) for name in chain[1:]), task.question
        assert len(set(chain)) == len(chain)
        assert task.supporting == chain[:-1]
        assert [p.title for p in task.passages] == list(chain[:-1])


def test_hop_meta_describes_the_chain():
    world = build_world()
    for task in generate_synth_hop(300):
        meta = task.meta
        assert meta["hops"] == len(meta["relations"]) == len(task.gold_path) - 1
        assert meta["question_type"] == "/".join(meta["relations"])
        assert world.follow(meta["entities"][0], meta["relations"]) == meta["entities"]
        assert meta["start_type"] == RELATIONS[meta["relations"][0]].domain
        assert meta["answer_type"] == RELATIONS[meta["relations"][-1]].range
        assert task.gold_path == (
            *(f"<search_query> {name}</search_query>" for name in meta["entities"][:-1]),
            f"<answer> {task.answer}</answer>",
        )


@pytest.mark.parametrize("min_hops, max_hops", [(2, 4), (2, 2), (3, 4), (1, 1)])
def test_hop_knobs_bound_the_hop_count(min_hops, max_hops):
    tasks = generate_synth_hop(150, split="test", min_hops=min_hops, max_hops=max_hops)
    assert {t.meta["hops"] for t in tasks} == set(range(min_hops, max_hops + 1))


def test_hop_relations_knob_restricts_the_chains():
    allowed = ["born_in", "lives_in", "country", "mayor"]
    tasks = generate_synth_hop(100, relations=allowed, max_hops=3)
    assert {r for t in tasks for r in t.meta["relations"]} <= set(allowed)
    chains = relation_chains(2, allowed)
    assert ("born_in", "country") in chains and ("country", "born_in") not in chains
    assert all(
        RELATIONS[a].range == RELATIONS[b].domain for c in chains for a, b in itertools.pairwise(c)
    )


@pytest.mark.parametrize(
    "knobs, message",
    [
        ({"split": "dev"}, "split"),
        ({"min_hops": 3, "max_hops": 2}, "min_hops"),
        ({"relations": ["sibling"]}, "sibling"),
        # One question per train country.
        ({"min_hops": 1, "max_hops": 1, "relations": ["capital"], "n": 100}, "Could only"),
    ],
)
def test_hop_bad_knobs_raise_a_clear_error(knobs, message):
    n = knobs.pop("n", 10)
    with pytest.raises(ValueError, match=message):
        generate_synth_hop(n, **knobs)


def test_hop_env_needs_room_for_every_search_and_the_answer():
    with pytest.raises(ValueError, match="max_steps"):
        SynthHopEnv(num_tasks=5, max_hops=4, max_steps=4)
    env = SynthHopEnv(num_tasks=20, min_hops=4, max_hops=4)
    assert env.max_steps == 5
    assert _replay(env, 0, env.tasks[0].gold_path)[-1][:2] == (1.0, True)


def test_hop_env_is_registered_and_shares_one_search_index():
    env = gym.make("swirl/SynthHop-v0", split="test", num_tasks=7)
    other = SynthHopEnv(num_tasks=3, seed=9)
    assert len(env.unwrapped.tasks) == 7
    assert env.unwrapped.tools[0] is other.tools[0]
    assert env.unwrapped.tools[0].name == "search"


def test_hop_world_scale_multiplies_the_world_and_keeps_the_splits():
    import gymnasium as gym

    small = gym.make("swirl/SynthHop-v0", num_tasks=10).unwrapped.world
    large = gym.make("swirl/SynthHop-v0", num_tasks=10, world_scale=3).unwrapped.world
    for entity_type in ENTITY_TYPES:
        assert len(large.of_type(entity_type)) == 3 * len(small.of_type(entity_type))
    train = gym.make("swirl/SynthHop-v0", num_tasks=500, world_scale=3).unwrapped.tasks
    test = gym.make("swirl/SynthHop-v0", split="test", num_tasks=200, world_scale=3).unwrapped
    assert not {t.meta["entities"][0] for t in train} & {t.meta["entities"][0] for t in test.tasks}
    test.reset(options={"index": 0})
    for action in test.tasks[0].gold_path:
        *_, info = test.step(action)
    assert info["score"] == 1.0  # the search tool indexes the scaled world
    with pytest.raises(ValueError, match="world_scale"):
        gym.make("swirl/SynthHop-v0", num_tasks=10, world_scale=0)


def test_hop_question_holdout_shares_start_entities_but_no_question():
    kwargs = {"min_hops": 2, "max_hops": 2, "holdout": "question"}
    train = generate_synth_hop(1500, split="train", **kwargs)
    test = generate_synth_hop(300, split="test", seed=7, **kwargs)
    assert not {t.question for t in train} & {t.question for t in test}
    train_starts = {t.meta["entities"][0] for t in train}
    test_starts = {t.meta["entities"][0] for t in test}
    assert len(train_starts & test_starts) > 100  # the same entities start both splits
    # Any seed gives questions of its split only: a train seed never makes a test question.
    again = generate_synth_hop(300, split="train", seed=7, **kwargs)
    assert not {t.question for t in again} & {t.question for t in test}
    with pytest.raises(ValueError, match="holdout"):
        generate_synth_hop(10, holdout="entity")
