"""Policies: the protocol helpers, scripted policies, the HF policy and the HTTP policy."""

from __future__ import annotations

import random
import re
import time
from dataclasses import replace

import pytest

from swirl_agents.policies import (
    NoisyOraclePolicy,
    Observation,
    OraclePolicy,
    Policy,
    RandomPolicy,
    SamplingSettings,
    describe_policy,
    episode_seed,
    make_policy,
    step_seed,
)
from swirl_agents.policies.base import cut_at_stop, restore_stop
from swirl_agents.policies.scripted import corrupt_action
from swirl_envs import Passage, Task
from tests.agents.fault_server import FaultServer

STOP = ("</math_exp>", "</search_query>", "</answer>")
MATH = Task(
    id="m0",
    question="Ada has 12 beads. She buys 5 more. She shares them equally among 4 friends.",
    answers=("4",),
    gold_path=("<math_exp>12 + 5</math_exp>", "<math_exp>17 / 4</math_exp>", "<answer>4</answer>"),
)
HOP = Task(
    id="h0",
    question="Where was the founder of Dovrin Works born?",
    answers=("Qaravel",),
    gold_path=(
        "<search_query> Dovrin Works</search_query>",
        "<search_query> Mira Tolven</search_query>",
        "<answer> Qaravel</answer>",
    ),
    passages=(
        Passage("Dovrin Works", "Dovrin Works was founded by Mira Tolven."),
        Passage("Mira Tolven", "Mira Tolven was born in Qaravel."),
    ),
)


def observe(task: Task, step: int = 0, seed: int = 0, text: str = "") -> Observation:
    messages = [{"role": "user", "content": text or task.question}]
    return Observation(text or task.question, messages, task, step, seed, STOP)


# --- protocol helpers ---------------------------------------------------------------


def test_episode_seed_is_stable_and_separates_tasks_samples_and_steps():
    assert episode_seed(0, "t1", 0) == episode_seed(0, "t1", 0)
    seeds = {episode_seed(s, t, k) for s in (0, 1) for t in ("t1", "t2") for k in (0, 1)}
    assert len(seeds) == 8
    assert all(0 <= seed < 2**63 for seed in seeds)
    assert len({step_seed(5, step) for step in range(10)}) == 10
    # A fixed value guards against a silent change of the hash (stored seeds would stop matching).
    assert episode_seed(0, "t1", 0) == 4029400404311436403
    assert step_seed(1, 2) == 8273436536119604435


def test_cut_at_stop_keeps_the_first_closed_call():
    assert cut_at_stop("a <answer>4</answer> more </answer>", STOP) == "a <answer>4</answer>"
    assert (
        cut_at_stop("<math_exp>1+2</math_exp><answer>3</answer>", STOP)
        == "<math_exp>1+2</math_exp>"
    )
    assert cut_at_stop("no tags", STOP) == "no tags"


def test_restore_stop_closes_only_an_open_stop_tag():
    assert restore_stop("think <answer>42", STOP) == "think <answer>42</answer>"
    assert restore_stop("<math_exp>1+2</math_exp> <search_query> X", STOP).endswith(
        "<search_query> X</search_query>"
    )
    assert restore_stop("<answer>4</answer>", STOP) == "<answer>4</answer>"
    assert restore_stop("plain text", STOP) == "plain text"


def test_sampling_settings_reject_bad_values_and_fall_back_to_env_tags():
    with pytest.raises(ValueError, match="temperature"):
        SamplingSettings(temperature=-1)
    with pytest.raises(ValueError, match="top_p"):
        SamplingSettings(top_p=0)
    with pytest.raises(ValueError, match="max_new_tokens"):
        SamplingSettings(max_new_tokens=0)
    assert SamplingSettings().stop_strings([observe(MATH)]) == sorted(STOP)
    assert SamplingSettings(stop=("X",)).stop_strings([observe(MATH)]) == ["X"]


def test_a_minimal_third_party_policy_satisfies_the_protocol():
    class AlwaysAnswer:
        def act(self, observations):
            return ["<answer>42</answer>" for _ in observations]

    assert isinstance(AlwaysAnswer(), Policy)
    assert describe_policy(AlwaysAnswer()) == {"name": "AlwaysAnswer"}
    assert describe_policy(NoisyOraclePolicy(0.2)) == {"name": "noisy-oracle", "p": 0.2}


def test_make_policy_builds_scripted_policies_and_rejects_unknown_specs():
    assert isinstance(make_policy("oracle"), OraclePolicy)
    assert make_policy("noisy-oracle", noise=0.1).p == 0.1
    with pytest.raises(ValueError, match="unknown policy"):
        make_policy("gpt")
    with pytest.raises(ValueError, match="model"):
        make_policy("openai:http://127.0.0.1:9/v1")


# --- scripted policies ----------------------------------------------------------------


def test_oracle_follows_the_gold_path_then_answers():
    oracle = OraclePolicy()
    actions = oracle.act([observe(MATH, step) for step in range(4)])
    assert actions == [*MATH.gold_path, "<answer>4</answer>"]


def test_noisy_oracle_with_p_zero_is_the_oracle_and_with_p_one_is_always_wrong():
    observations = [
        observe(task, step, seed) for task in (MATH, HOP) for step in range(3) for seed in range(5)
    ]
    assert NoisyOraclePolicy(0).act(observations) == OraclePolicy().act(observations)
    wrong = NoisyOraclePolicy(1).act(observations)
    gold = OraclePolicy().act(observations)
    assert all(w != g for w, g in zip(wrong, gold, strict=True))


def test_noisy_oracle_mistakes_are_plausible():
    rng = random.Random(0)
    question_numbers = {"12", "5", "4"}
    for _ in range(50):
        wrong = corrupt_action("<math_exp>12 + 5</math_exp>", observe(MATH), rng)
        expression = re.fullmatch(r"<math_exp>(\d+) ([-+*/]) (\d+)</math_exp>", wrong)
        assert expression, wrong
        a, op, b = expression.groups()
        changed = [a != "12", op != "+", b != "5"]
        assert sum(changed) == 1, wrong  # exactly one operand or the operator
        if a != "12":
            assert a in question_numbers or abs(int(a) - 12) <= 3
        wrong_query = corrupt_action(HOP.gold_path[0], observe(HOP), rng)
        assert wrong_query in {
            "<search_query> Mira Tolven</search_query>",
            "<search_query> Qaravel</search_query>",
        }
        wrong_answer = corrupt_action("<answer>4</answer>", observe(MATH), rng)
        assert 1 <= abs(int(re.search(r"\d+", wrong_answer).group()) - 4) <= 3


def test_noisy_oracle_is_seeded_per_episode_step_not_per_batch():
    policy = NoisyOraclePolicy(0.5)
    observations = [observe(MATH, step, seed) for seed in range(20) for step in range(3)]
    together = policy.act(observations)
    alone = [policy.act([o])[0] for o in reversed(observations)][::-1]
    assert together == alone
    wrong_rate = sum(
        a != g for a, g in zip(together, OraclePolicy().act(observations), strict=True)
    ) / len(together)
    assert 0.25 < wrong_rate < 0.75


def test_random_policy_is_seeded_and_produces_malformed_and_wellformed_actions():
    observations = [observe(HOP, step, seed) for seed in range(30) for step in range(2)]
    first, second = RandomPolicy().act(observations), RandomPolicy().act(observations)
    assert first == second
    assert "" in first
    assert any(a.endswith("</search_query>") for a in first)
    assert any("<" not in a and a for a in first)


# --- Hugging Face policy ----------------------------------------------------------------

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    from swirl_agents.tiny import build_tiny_model, tiny_corpus

    texts = list(tiny_corpus([MATH, HOP])) * 3
    return build_tiny_model(tmp_path_factory.mktemp("tiny"), texts, vocab_size=400, seed=1)


@pytest.fixture(scope="module")
def gqa_path(tmp_path_factory):
    """The tiny model with grouped-query attention: 4 query heads share 2 key/value heads."""
    from swirl_agents.tiny import build_tiny_model, tiny_corpus

    texts = list(tiny_corpus([MATH, HOP])) * 3
    directory = tmp_path_factory.mktemp("gqa")
    return build_tiny_model(directory, texts, vocab_size=400, seed=1, num_kv_heads=2)


@pytest.fixture(params=["tiny_path", "gqa_path"])
def model_path(request):
    """Each test that takes it runs on the tiny model and on its grouped-query twin."""
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    # A tiny model on a shared CPU runs far faster on one thread than on contended ones.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def hf_policy(path, reuse_kv=True, **sampling):
    """The tiny model as a text policy, its weights redrawn so that every token of context matters.

    At the default initialisation scale a random model's greedy output hardly depends
    on its input (it repeats one token), which would hide padding mistakes.
    """
    from swirl_agents.policies.hf import HFPolicy

    settings = SamplingSettings(**{"max_new_tokens": 12, **sampling})
    policy = HFPolicy.from_pretrained(
        str(path), sampling=settings, prompt_format="text", device="cpu", reuse_kv=reuse_kv
    )
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in policy.model.parameters():
            if parameter.dim() > 1:
                parameter.normal_(0, 0.15, generator=generator)
    return policy


def varied_observations(count: int = 6) -> list[Observation]:
    # Prompts of different lengths, so left padding differs row by row.
    texts = [f"{MATH.question} " * (1 + i % 3) + f"Step {i}:" for i in range(count)]
    return [observe(MATH, i % 2, 100 + i, text) for i, text in enumerate(texts)]


@pytest.mark.parametrize("reuse_kv", [True, False])
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_hf_batched_generation_equals_one_by_one(model_path, temperature, reuse_kv, monkeypatch):
    from swirl_agents.policies.kv_cache import MIN_SHARED_PREFIX, shared_prefix_length

    policy = hf_policy(model_path, reuse_kv, temperature=temperature, stop=("</never>",))
    observations = varied_observations()
    assert (policy.kv_cache is not None) == reuse_kv
    assert shared_prefix_length(policy._tokenize(observations)) >= MIN_SHARED_PREFIX
    batched = policy.act(observations)
    single = []
    for observation in observations:
        if policy.kv_cache is not None:
            policy.kv_cache.clear()  # each row computed from scratch, on its own
        single.append(policy.act([observation])[0])
    assert batched == single
    assert len(set(batched)) == len(batched)
    from swirl_agents.policies import kv_cache

    # The mistakes this test exists to catch: rows seeing padding, or a slot's
    # positions past the row's own tokens (other rows' padding, stale tokens).
    layout, visible = kv_cache.layout_rows, kv_cache.visible

    def attend_to_padding(rows, pad_id):
        ids, mask = layout(rows, pad_id)
        return ids, torch.ones_like(mask)

    def see_everything(positions, width):
        return torch.ones_like(visible(positions, width))

    monkeypatch.setattr(kv_cache, "layout_rows", attend_to_padding)
    monkeypatch.setattr(kv_cache, "visible", see_everything)
    if policy.kv_cache is not None:
        policy.kv_cache.clear()
    assert policy.act(observations) != single
    assert policy.stats.actions == 3 * len(observations)
    assert policy.stats.completion_tokens > 0 and policy.stats.tokens_per_second > 0


def test_rows_are_left_padded_and_a_query_sees_its_row_up_to_itself():
    from swirl_agents.policies.kv_cache import (
        common_length,
        layout_rows,
        shared_prefix_length,
        visible,
    )

    rows = [[1, 2, 3, 4, 5], [1, 2, 3, 9], [1, 2, 7]]
    assert shared_prefix_length(rows) == 2
    assert shared_prefix_length([[1, 2, 3]]) == 2  # one token is always left to generate from
    assert common_length([1, 2, 3, 4], [1, 2, 3, 4]) == 3
    assert common_length([1, 2, 8], [1, 2, 3, 4]) == 2
    ids, mask = layout_rows(rows, pad_id=0)
    assert ids.tolist() == [[1, 2, 3, 4, 5], [0, 1, 2, 3, 9], [0, 0, 1, 2, 7]]
    assert mask.tolist() == [[1, 1, 1, 1, 1], [0, 1, 1, 1, 1], [0, 0, 1, 1, 1]]
    # Two slots: one holds 3 tokens and gets 2 more, the other holds 1 and gets 1 (its
    # padding query writes past its end, at position 2).
    seen = visible(torch.tensor([[3, 4], [2, 1]]), 5)
    assert seen.shape == (2, 1, 2, 5)
    assert seen[0, 0].int().tolist() == [[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]]
    assert seen[1, 0, 1].int().tolist() == [1, 1, 0, 0, 0]


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_hf_reused_keys_and_values_give_the_actions_of_a_recomputation(model_path, temperature):
    reusing = hf_policy(model_path, True, temperature=temperature, max_new_tokens=8)
    recomputing = hf_policy(model_path, False, temperature=temperature, max_new_tokens=8)
    observations = varied_observations(4)
    for round_ in range(3):
        actions = reusing.act(observations)
        assert actions == recomputing.act(observations)
        # The next round's transcripts extend this round's (new feedback for each row).
        # The first episode ends after round 1: its slot is freed and the last live
        # episode's values move into it.
        observations = [
            observe(MATH, o.step + 1, o.seed, o.text + action + f"\n{round_} -> {i}\n")
            for i, (o, action) in enumerate(zip(observations, actions, strict=True))
            if round_ != 1 or i
        ]
    actions = reusing.act(observations)
    assert actions == recomputing.act(observations)
    cache = reusing.kv_cache
    assert sorted(cache.slot_of.values()) == [0, 1, 2]
    # Only the new tokens ran: each slot holds the episode's prompt and action, all but
    # the last round's feedback.
    rows = reusing._tokenize(observations)
    for observation, row in zip(observations, rows, strict=True):
        kept = cache.episode_tokens(observation.seed)
        assert len(kept) > len(row) // 2 and row[: len(kept) - 8] == kept[: len(kept) - 8]


def test_hf_new_episode_among_live_ones_reuses_the_shared_prefix_and_runs_ahead(tiny_path):
    reusing = hf_policy(tiny_path, True, temperature=1.0, max_new_tokens=6)
    recomputing = hf_policy(tiny_path, False, temperature=1.0, max_new_tokens=6)
    system = "You solve problems step by step with a calculator. " * 2
    observations = [
        observe(MATH, 0, 200 + i, system + f"Task {i}: add {i} and 3.") for i in range(4)
    ]
    actions = reusing.act(observations)
    assert actions == recomputing.act(observations)
    assert reusing.kv_cache.prefix is not None  # computed once for the four new episodes
    # Next round: the live episodes add a short tool result; a new episode joins with a
    # question far longer than those results.
    observations = [
        observe(MATH, 1, o.seed, o.text + action + " -> 7\n")
        for o, action in zip(observations, actions, strict=True)
    ]
    observations.append(observe(MATH, 0, 300, system + "Task 9: " + MATH.question * 2))
    computed = []
    forward = reusing.model.forward

    def counting(input_ids, **kwargs):
        computed.append(tuple(input_ids.shape))
        return forward(input_ids=input_ids, **kwargs)

    reusing.model.forward = counting
    assert reusing.act(observations) == recomputing.act(observations)
    unseen = len(reusing._tokenize(observations)[-1]) - len(reusing.kv_cache.prefix)
    # The new row's question ran ahead on its own, so the batch's first pass over all
    # five rows is far narrower than the new row's unseen part.
    (ahead_rows, ahead), (batch_rows, first_pass) = computed[:2]
    assert ahead_rows == 1 and batch_rows == len(observations)
    assert first_pass < unseen // 2 and ahead + first_pass == unseen


@pytest.mark.parametrize("dtype, tolerance", [(torch.float32, 1e-5), (torch.bfloat16, 3e-2)])
def test_slot_attention_reads_the_shared_prefix_once_and_equals_sdpa(dtype, tolerance):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from swirl_agents.policies.kv_cache import visible
    from swirl_agents.policies.slot_attention import SharedPrefix, slot_attention

    generator = torch.Generator().manual_seed(0)

    def draw(*shape):
        return torch.randn(*shape, generator=generator).to(dtype)

    rows, heads, kv_heads, dim, width, shared = 5, 4, 2, 8, 30, 12
    module = torch.nn.Module()
    module.layer_idx, module.num_key_value_groups = 1, heads // kv_heads
    # The saved prefix is longer than what these rows share; each slot holds a copy.
    prefix = [draw(kv_heads, 16, dim) for _ in range(4)]  # keys and values of layers 0 and 1
    keys, values = draw(rows, kv_heads, width, dim), draw(rows, kv_heads, width, dim)
    keys[:, :, :shared], values[:, :, :shared] = prefix[1][:, :shared], prefix[3][:, :shared]
    # Each row's new token sits at its own position; columns past it are other rows' room.
    mask = visible(torch.tensor([[29], [20], [12], [25], [17]]), width)
    query = draw(rows, heads, 1, dim)
    expected, _ = sdpa_attention_forward(module, query, keys, values, mask, scaling=0.3)
    plan = SharedPrefix(keys=prefix[:2], values=prefix[2:], length=shared)
    output, _ = slot_attention(module, query, keys, values, mask, scaling=0.3, shared_prefix=plan)
    assert output.shape == expected.shape == (rows, 1, heads, dim)
    assert torch.allclose(output.float(), expected.float(), atol=tolerance)
    # The prefix is read from the plan, not from the slots.
    keys[:, :, :shared] = 0
    again, _ = slot_attention(module, query, keys, values, mask, scaling=0.3, shared_prefix=plan)
    assert torch.equal(again, output)
    # A prompt pass (several queries per row) is plain sdpa.
    queries = draw(rows, heads, 3, dim)
    wide = visible(torch.tensor([[27, 28, 29]] * rows), width)
    prompt, _ = slot_attention(module, queries, keys, values, wide, shared_prefix=plan)
    assert torch.equal(prompt, sdpa_attention_forward(module, queries, keys, values, wide)[0])


def test_hf_policy_switches_its_model_to_slot_attention_without_changing_other_uses(tiny_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from swirl_agents.policies.hf import HFPolicy
    from swirl_agents.policies.slot_attention import SLOT_ATTENTION

    model = AutoModelForCausalLM.from_pretrained(tiny_path)
    ids = torch.tensor([[2, 2, 40, 41, 42], [50, 51, 52, 53, 54]])
    mask = (ids != 2).long()
    before = model(input_ids=ids, attention_mask=mask).logits
    HFPolicy(model, AutoTokenizer.from_pretrained(tiny_path), prompt_format="text")
    assert model.config._attn_implementation == SLOT_ATTENTION
    after = model(input_ids=ids, attention_mask=mask).logits  # training and generate() path
    assert torch.equal(before, after)


def test_hf_decoding_reads_the_prefix_new_episodes_share_once(model_path, monkeypatch):
    from transformers import AttentionInterface

    from swirl_agents.policies.kv_cache import MIN_SHARED_PREFIX
    from swirl_agents.policies.slot_attention import SLOT_ATTENTION, slot_attention

    reusing = hf_policy(model_path, True, temperature=1.0, max_new_tokens=6)
    recomputing = hf_policy(model_path, False, temperature=1.0, max_new_tokens=6)
    shared = []

    def spy(module, query, *args, shared_prefix=None, **kwargs):
        if query.shape[2] == 1 and shared_prefix is not None:
            shared.append((query.shape[0], shared_prefix.length))
        return slot_attention(module, query, *args, shared_prefix=shared_prefix, **kwargs)

    monkeypatch.setitem(AttentionInterface._global_mapping, SLOT_ATTENTION, spy)
    system = "You solve problems step by step with a calculator. " * 2
    observations = [observe(MATH, 0, 400 + i, system + f"Task {i}: add {i}.") for i in range(3)]
    assert reusing.act(observations) == recomputing.act(observations)
    prefix = len(reusing.kv_cache.prefix)
    assert shared and all(length >= MIN_SHARED_PREFIX for _, length in shared)
    assert max(length for _, length in shared) == prefix and max(rows for rows, _ in shared) == 3


def test_hf_new_episode_reuses_what_it_shares_with_the_ended_episode_in_its_slot(tiny_path):
    reusing = hf_policy(tiny_path, True, temperature=1.0, max_new_tokens=6)
    recomputing = hf_policy(tiny_path, False, temperature=1.0, max_new_tokens=6)
    system = "You solve problems step by step with a calculator. " * 2
    first = observe(MATH, 0, 500, system + "Task 1: add 1 and 3.")
    action = reusing.act([first])[0]
    assert action == recomputing.act([first])[0]
    second = observe(MATH, 1, 500, first.text + action + " -> 4\n")
    assert reusing.act([second]) == recomputing.act([second])
    # One episode at a time: the next one takes the ended episode's slot and only runs
    # what follows the prompt they share.
    computed = []
    forward = reusing.model.forward

    def counting(input_ids, **kwargs):
        computed.append(input_ids.shape[1])
        return forward(input_ids=input_ids, **kwargs)

    reusing.model.forward = counting
    third = observe(MATH, 0, 501, system + "Task 2: add 2 and 5.")
    assert reusing.act([third]) == recomputing.act([third])
    prompt = reusing._tokenize([third])[0]
    shared = reusing._tokenize([observe(MATH, text=system)])[0]
    assert computed[0] <= len(prompt) - len(shared) + 2


def test_hf_text_prompt_is_encoded_segment_by_segment_as_training_encodes_it(tiny_path):
    from swirl_agents.decompose import SubTrajectory, tokenize_state

    policy = hf_policy(tiny_path)
    tokenizer = policy.tokenizer
    # A word split across two segments: encoded apart, it is not encoded as in one text.
    prompt, history = "Question: Ad", (("a has 12 beads.", " -> 12\n"),)
    segments = (prompt, *history[0])
    text = "".join(segments)
    sub = SubTrajectory("m0", 0, 1, 2, MATH.question, prompt, history, action="unused")
    expected = tokenize_state(sub, tokenizer, "text")
    assert expected != tokenizer(text)["input_ids"]
    observation = Observation(text, [], MATH, 1, 7, STOP, segments)
    assert policy._tokenize([observation]) == [expected]

    class Recording:
        def __init__(self, inner):
            self.inner, self.texts = inner, []

        def __call__(self, texts, **kwargs):
            self.texts.append(list(texts))
            return self.inner(texts, **kwargs)

        def __getattr__(self, name):
            return getattr(self.inner, name)

    # The next round encodes only the new action and feedback.
    recording = policy._segments.tokenizer = Recording(tokenizer)
    step = ("<math_exp>12 / 4</math_exp>", "\n<result>3</result>\n")
    later = Observation(text + "".join(step), [], MATH, 2, 7, STOP, (*segments, *step))
    (row,) = policy._tokenize([later])
    assert recording.texts == [list(step)]
    later_sub = SubTrajectory("m0", 0, 2, 3, MATH.question, prompt, (*history, step), "unused")
    assert row == tokenize_state(later_sub, tokenizer, "text")
    # Without segments (a caller that only has the text), the text is one segment.
    plain = Observation(text, [], MATH, 1, 8, STOP)
    assert policy._tokenize([plain]) == [tokenizer(text)["input_ids"]]


@pytest.mark.parametrize("prompt_format", ["text", "chat"])
def test_hf_policy_acts_from_the_transcript_alone_without_a_task(tiny_path, prompt_format):
    from swirl_agents.policies.hf import HFPolicy

    settings = SamplingSettings(temperature=1.0, max_new_tokens=8)
    policy = HFPolicy.from_pretrained(
        str(tiny_path), sampling=settings, prompt_format=prompt_format, device="cpu"
    )
    with_task = [observe(MATH, seed=3), observe(HOP, seed=4)]
    without = [replace(observation, task=None) for observation in with_task]
    assert without[0].task is None
    policy.close()
    first = policy.act(with_task)
    policy.close()
    assert policy.act(without) == first


def test_policies_import_the_encoding_not_a_training_module():
    """Every module a policy imports, at the top or inside a function, followed through the
    package: the encoding is among them, no training module or ``decompose`` is."""
    import ast
    import importlib.util
    from pathlib import Path

    def imports(name: str) -> set[str]:
        tree = ast.parse(Path(importlib.util.find_spec(name).origin).read_text(encoding="utf-8"))
        found = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module)
                for alias in node.names:  # ``from package import module``
                    candidate = f"{node.module}.{alias.name}"
                    if importlib.util.find_spec(node.module).submodule_search_locations and (
                        importlib.util.find_spec(candidate) is not None
                    ):
                        found.add(candidate)
        return {module for module in found if module.startswith("swirl_agents")}

    seen, todo = set(), ["swirl_agents.policies.hf", "swirl_agents.policies.openai_compat"]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += sorted(imports(name))
    assert "swirl_agents.encoding" in seen
    assert not [m for m in seen if m.startswith(("swirl_agents.train", "swirl_agents.decompose"))]


def test_scripted_policies_say_they_need_the_task():
    with pytest.raises(ValueError, match="gold path"):
        OraclePolicy().act([replace(observe(MATH), task=None)])


def test_hf_forgets_reused_values_when_the_weights_change(tiny_path):
    policy = hf_policy(tiny_path, True, temperature=0.0, max_new_tokens=6)
    observations = varied_observations(3)
    policy.act(observations)
    assert len(policy.kv_cache.slot_of) == 3
    with torch.no_grad():
        for parameter in policy.model.parameters():
            parameter.mul_(1.5)  # what an optimizer step does: an in-place update
    after = policy.act(observations)
    fresh = hf_policy(tiny_path, False, temperature=0.0, max_new_tokens=6)
    with torch.no_grad():
        for mine, theirs in zip(fresh.model.parameters(), policy.model.parameters(), strict=True):
            mine.copy_(theirs)
    assert after == fresh.act(observations)


def test_hf_sampling_depends_on_the_episode_seed(tiny_path):
    policy = hf_policy(tiny_path, temperature=1.0)
    base = observe(MATH, 0, 1)
    again = policy.act([base, base])
    other = policy.act([observe(MATH, 0, seed) for seed in range(2, 6)])
    assert again[0] == again[1]
    assert any(text != again[0] for text in other)


def test_hf_generation_stops_right_after_a_stop_string(tiny_path):
    free = hf_policy(tiny_path, temperature=0.0, max_new_tokens=20, stop=("\x00never",))
    observation = observe(MATH, text="Ada has")
    unstopped = free.act([observation])[0]
    stop = unstopped[3:6]  # a string the model is known to produce, a few tokens in
    first = unstopped.find(stop)
    stopped_policy = hf_policy(tiny_path, temperature=0.0, max_new_tokens=20, stop=(stop,))
    stopped = stopped_policy.act([observation])[0]
    assert stopped == unstopped[: first + len(stop)]
    assert stopped_policy.stats.completion_tokens < free.stats.completion_tokens


def test_hf_chat_format_uses_the_template_and_text_format_the_transcript(tiny_path):
    from swirl_agents.policies.hf import HFPolicy

    chat = HFPolicy.from_pretrained(str(tiny_path), device="cpu")
    assert chat.settings()["prompt_format"] == "chat"
    chat_tokens = chat._tokenize([observe(MATH)])[0]
    text_tokens = hf_policy(tiny_path)._tokenize([observe(MATH)])[0]
    marker = chat.tokenizer.convert_tokens_to_ids("<|im_start|>")
    assert marker in chat_tokens and marker not in text_tokens
    assert len(chat.act([observe(MATH), observe(HOP)])) == 2
    with pytest.raises(ValueError, match="unknown dtype 'bf16'"):
        HFPolicy.from_pretrained(str(tiny_path), device="cpu", dtype="bf16")
    tokenizer = chat.tokenizer
    tokenizer.chat_template = None
    with pytest.raises(ValueError, match="chat template"):
        HFPolicy(chat.model, tokenizer, prompt_format="chat")


# --- OpenAI-compatible HTTP policy --------------------------------------------------------


def gold_responder(body):
    """Answers like the oracle: the gold action for the number of assistant turns so far."""
    messages = body.get("messages") or [{"role": "user", "content": body.get("prompt", "")}]
    step = sum(message["role"] == "assistant" for message in messages)
    return "I will compute. " + MATH.gold_path[min(step, 2)] + " trailing words"


def http_policy(server, **options):
    from swirl_agents.policies.openai_compat import OpenAIPolicy

    settings = {"timeout": 2.0, "max_retries": 3, "backoff": 0.01, "max_backoff": 0.05, **options}
    return OpenAIPolicy(server.base_url, "tiny", **settings)


def test_http_chat_reply_gets_its_closing_tag_back_and_sends_seed_and_key(monkeypatch):
    monkeypatch.setenv("SWIRL_TEST_KEY", "secret-123")
    with (
        FaultServer(gold_responder) as server,
        http_policy(server, api_key_env="SWIRL_TEST_KEY") as policy,
    ):
        actions = policy.act([observe(MATH, 0, seed=7)])
    assert actions == ["I will compute. <math_exp>12 + 5</math_exp>"]
    body = server.requests[0]
    assert body["model"] == "tiny" and body["messages"][0]["content"] == MATH.question
    assert body["seed"] == step_seed(7, 0) % 2**31
    assert sorted(body["stop"]) == sorted(STOP)
    assert server.headers[0]["Authorization"] == "Bearer secret-123"
    assert policy.stats.completion_tokens > 0


def test_http_completions_api_sends_the_transcript():
    with FaultServer(gold_responder) as server, http_policy(server, api="completions") as policy:
        assert policy.act([observe(MATH, text="TRANSCRIPT")]) == [
            "I will compute. <math_exp>12 + 5</math_exp>"
        ]
    assert server.requests[0]["prompt"] == "TRANSCRIPT"
    assert "messages" not in server.requests[0]


def test_http_retries_server_errors_rate_limits_and_dropped_connections():
    with FaultServer(gold_responder, ["500", "429", "drop", "503"]) as server:
        with http_policy(server, max_retries=4) as policy:
            assert policy.act([observe(MATH)]) == ["I will compute. <math_exp>12 + 5</math_exp>"]
    assert len(server.requests) == 5


def test_http_gives_a_clear_error_when_retries_run_out():
    with (
        FaultServer(gold_responder, ["500"] * 10) as server,
        http_policy(server, max_retries=2) as policy,
    ):
        with pytest.raises(
            RuntimeError, match=r"failed 3 attempts; last failure: HTTP 500.*injected"
        ):
            policy.act([observe(MATH)])
    assert len(server.requests) == 3


@pytest.mark.parametrize(
    ("fault", "message"),
    [("malformed", "invalid JSON"), ("400", "HTTP 400"), ("404", "HTTP 404")],
)
def test_http_does_not_retry_what_retrying_cannot_fix(fault, message):
    with FaultServer(gold_responder, [fault]) as server, http_policy(server) as policy:
        with pytest.raises(RuntimeError, match=message):
            policy.act([observe(MATH)])
    assert len(server.requests) == 1


def test_http_slow_reply_times_out_and_the_retry_succeeds_quickly():
    with (
        FaultServer(gold_responder, ["slow:3"]) as server,
        http_policy(server, timeout=0.3) as policy,
    ):
        started = time.monotonic()
        assert policy.act([observe(MATH)]) == ["I will compute. <math_exp>12 + 5</math_exp>"]
        assert time.monotonic() - started < 2.5


def test_http_never_hangs_past_its_timeouts_on_a_stuck_server():
    with FaultServer(gold_responder, ["slow:5"] * 3) as server:
        with http_policy(server, timeout=0.3, max_retries=1) as policy:
            started = time.monotonic()
            with pytest.raises(RuntimeError, match="ReadTimeout"):
                policy.act([observe(MATH)])
            assert time.monotonic() - started < 2.5


def test_http_server_down_is_a_clear_error_not_a_hang():
    from swirl_agents.policies.openai_compat import OpenAIPolicy, PolicyError

    with FaultServer(gold_responder) as server:
        url = server.base_url  # the port is free again once the server is gone
    policy = OpenAIPolicy(url, "tiny", timeout=1.0, max_retries=1, backoff=0.01)
    started = time.monotonic()
    with pytest.raises(PolicyError, match="ConnectError"):
        policy.act([observe(MATH)])
    assert time.monotonic() - started < 3
    policy.close()


def test_http_bounds_concurrent_requests():
    with FaultServer(gold_responder, ["slow:0.2"] * 12) as server:
        with http_policy(server, concurrency=3) as policy:
            actions = policy.act([observe(MATH, 0, seed) for seed in range(12)])
    assert len(actions) == 12
    assert 2 <= server.max_in_flight <= 3


def test_http_policy_serving_the_tiny_model_matches_the_local_policy(tiny_path):
    local = hf_policy(tiny_path, temperature=0.0, max_new_tokens=16)
    served = hf_policy(tiny_path, temperature=0.0, max_new_tokens=16, stop=("\x00",))

    def respond(body):
        text = body["prompt"]
        return served.act([observe(MATH, text=text)])[0]

    observations = [observe(MATH, text=f"Ada has {n} beads.") for n in range(4)]
    with (
        FaultServer(respond, ["500"]) as server,
        http_policy(server, api="completions", concurrency=1) as policy,
    ):
        assert policy.act(observations) == local.act(observations)
