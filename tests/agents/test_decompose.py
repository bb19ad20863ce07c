"""Step-wise decomposition: K actions -> K sub-trajectories, as text and prefix-exact token ids.

The encoding it relies on (``swirl_agents.encoding``, shared with the policies) is tested here too.
"""

import gymnasium as gym
import pytest

pytest.importorskip("transformers")

import swirl_envs  # noqa: E402
from swirl_agents.decompose import (  # noqa: E402
    decompose_trajectory,
    tokenize_state,
    tokenize_sub_trajectory,
    tokenize_trajectory,
)
from swirl_agents.encoding import (  # noqa: E402
    SegmentCache,
    TokenizedTrajectory,
    chat_prompt_ids,
    leading_special_ids,
    state_ids,
    tokenize_segments,
    transcript_segments,
)
from swirl_agents.policies.scripted import OraclePolicy, RandomPolicy  # noqa: E402
from swirl_agents.rollout import rollout  # noqa: E402
from swirl_agents.tiny import train_tiny_tokenizer  # noqa: E402
from swirl_agents.trajectory import Step, Trajectory  # noqa: E402
from swirl_envs.transcript import transcript_messages  # noqa: E402
from tests.envs.dataset_fixtures import dataset_env_kwargs  # noqa: E402

ENV_IDS = sorted(swirl_envs.ENV_IDS)
PROMPT = "Solve it.\n\nQuestion: What is 3 + 4, doubled?\n"


def handmade_trajectory() -> Trajectory:
    return Trajectory(
        task_id="t1",
        sample=2,
        env_id="swirl/SynthMath-v0",
        question="What is 3 + 4, doubled?",
        answers=["14"],
        prompt=PROMPT,
        steps=[
            Step("First add. <math_exp>3 + 4</math_exp>", "\n3 + 4 -> 7\n", tool="calculator"),
            Step("oops no call", "\nError: No tool call or answer found.\n"),
            Step("Double it. <math_exp>7 * 2</math_exp>", "\n7 * 2 -> 14\n", tool="calculator"),
            Step("<answer>14</answer>", "", answer="14", reward=1.0),
        ],
    )


def merging_tokenizer(texts):
    """A byte-level BPE without word splitting or BOS: merges freely cross segment ends."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=["<|pad|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<|pad|>")


@pytest.fixture(scope="module")
def corpus():
    env = gym.make("swirl/SynthHop-v0")
    hop = [
        t.transcript
        for t in rollout(env, OraclePolicy(), num_tasks=20, progress=False).trajectories
    ]
    env = gym.make("swirl/SynthMath-v0")
    math = [
        t.transcript
        for t in rollout(env, OraclePolicy(), num_tasks=20, progress=False).trajectories
    ]
    return (hop + math + [handmade_trajectory().transcript]) * 3


@pytest.fixture(scope="module")
def tokenizers(corpus):
    return {
        "tiny": train_tiny_tokenizer(corpus, vocab_size=500),
        "merging": merging_tokenizer(corpus),
    }


@pytest.fixture(scope="module")
def real_trajectories(tmp_path_factory):
    """Per env: oracle and random-policy episodes (gold steps, malformed steps, errors)."""
    made = {}

    def episodes(env_id):
        if env_id not in made:
            fixtures = tmp_path_factory.mktemp("data")
            env = gym.make(env_id, **dataset_env_kwargs(env_id, fixtures))
            gold = rollout(env, OraclePolicy(), num_tasks=2, progress=False).trajectories
            noisy = rollout(env, RandomPolicy(), num_tasks=2, seed=1, progress=False).trajectories
            made[env_id] = (gold + noisy, fixtures)
            assert any(len(t.steps) > 1 for t in gold + noisy)
        return made[env_id]

    return episodes


def test_decompose_gives_one_sub_trajectory_per_action_with_exact_states():
    trajectory = handmade_trajectory()
    subs = decompose_trajectory(trajectory)
    assert len(subs) == len(trajectory.steps) == 4
    for k, sub in enumerate(subs):
        assert (sub.task_id, sub.sample, sub.step, sub.num_steps) == ("t1", 2, k, 4)
        assert sub.state == trajectory.state(k)
        assert sub.action == trajectory.steps[k].action
        assert len(sub.history) == k
    assert subs[2].state.endswith("Error: No tool call or answer found.\n")
    assert subs[0].state == PROMPT


@pytest.mark.parametrize(
    ("tokenizer_name", "layout"), [("tiny", "text"), ("tiny", "chat"), ("merging", "text")]
)
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_every_sub_trajectory_tokenizes_to_a_prefix_of_the_full_transcript(
    env_id, tokenizer_name, layout, tokenizers, real_trajectories
):
    tokenizer = tokenizers[tokenizer_name]
    for trajectory in real_trajectories(env_id)[0]:
        full = tokenize_trajectory(trajectory, tokenizer, layout)
        assert len(full.action_spans) == len(trajectory.steps)
        for k, sub in enumerate(decompose_trajectory(trajectory)):
            ids = tokenize_sub_trajectory(sub, tokenizer, layout)
            assert ids.input_ids == full.input_ids[: len(ids.input_ids)]
            assert ids.action_spans == (full.action_spans[k],)
            assert ids == full.sub_trajectory(k)
            state = tokenize_state(sub, tokenizer, layout)
            assert state == list(full.input_ids[: full.action_spans[k][0]])
            start, end = full.action_spans[k]
            assert tokenizer.decode(full.input_ids[start:end]) == sub.action


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_text_layout_decodes_to_the_transcript_and_chat_layout_to_the_template(
    env_id, tokenizers, real_trajectories
):
    tokenizer = tokenizers["tiny"]
    for trajectory in real_trajectories(env_id)[0]:
        text = tokenize_trajectory(trajectory, tokenizer, "text")
        assert tokenizer.decode(text.input_ids, skip_special_tokens=True) == trajectory.transcript
        assert text.input_ids[0] == tokenizer.bos_token_id
        chat = tokenize_trajectory(trajectory, tokenizer, "chat")
        steps = [(s.action, s.feedback) for s in trajectory.steps]
        messages = transcript_messages(trajectory.prompt, trajectory.question, steps)
        rendered = tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        assert tokenizer.decode(chat.input_ids) == rendered


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_a_stored_trajectory_gives_back_the_messages_the_env_reported(env_id, real_trajectories):
    trajectories, fixtures = real_trajectories(env_id)
    env = gym.make(env_id, **dataset_env_kwargs(env_id, fixtures))
    for trajectory in trajectories:
        _, info = env.reset(options={"index": trajectory.meta["index"]})
        for step in trajectory.steps:
            *_, info = env.step(step.action)
        steps = [(s.action, s.feedback) for s in trajectory.steps]
        assert (
            transcript_messages(trajectory.prompt, trajectory.question, steps) == info["messages"]
        )


def test_whole_string_tokenization_would_break_the_prefix_property(tokenizers):
    # Why the transcript is encoded segment by segment: a merging BPE tokenizes an
    # action differently once the following tool result is appended to it.
    tokenizer = tokenizers["merging"]
    trajectory = handmade_trajectory()
    whole = tokenizer(trajectory.transcript, add_special_tokens=False).input_ids
    broken = 0
    for k in range(len(trajectory.steps)):
        prefix_text = trajectory.state(k) + trajectory.steps[k].action
        prefix = tokenizer(prefix_text, add_special_tokens=False).input_ids
        broken += prefix != whole[: len(prefix)]
    assert broken > 0
    segmented = tokenize_trajectory(trajectory, tokenizer)
    assert tokenizer.decode(segmented.input_ids) == trajectory.transcript


def test_action_mask_covers_exactly_the_action_tokens(tokenizers):
    tokenizer = tokenizers["tiny"]
    trajectory = handmade_trajectory()
    tokens = tokenize_trajectory(trajectory, tokenizer)
    masked = [i for i, bit in zip(tokens.input_ids, tokens.action_mask, strict=True) if bit]
    assert tokenizer.decode(masked) == "".join(step.action for step in trajectory.steps)
    assert len(tokens.action_mask) == len(tokens.input_ids)


def test_bos_is_put_once_only_when_the_tokenizer_uses_one(tokenizers):
    trajectory = handmade_trajectory()
    tiny, merging = tokenizers["tiny"], tokenizers["merging"]
    assert leading_special_ids(tiny) == [tiny.bos_token_id]
    assert tokenize_trajectory(trajectory, tiny).input_ids.count(tiny.bos_token_id) == 1
    assert leading_special_ids(merging) == []
    ids = tokenize_trajectory(trajectory, merging).input_ids
    assert not set(ids) & set(merging.all_special_ids)


def test_truncate_keeps_whole_actions_and_drops_the_context_after_the_last():
    tokens = TokenizedTrajectory(tuple(range(20)), ((3, 6), (8, 12), (15, 18)))
    assert tokens.truncate(13) == TokenizedTrajectory(tuple(range(12)), ((3, 6), (8, 12)))
    assert tokens.truncate(100) == TokenizedTrajectory(tuple(range(18)), tokens.action_spans)
    assert tokens.truncate(5).action_spans == ()
    with pytest.raises(IndexError):
        tokens.sub_trajectory(3)


def test_chat_template_that_rewrites_history_is_rejected(tokenizers):
    tokenizer = train_tiny_tokenizer(["some text"], vocab_size=300)
    # A template that shows only the last assistant turn (as some "thinking" templates
    # do with old reasoning) cannot share one pass between actions.
    tokenizer.chat_template = (
        "{% for m in messages %}{% if m['role'] != 'assistant' or loop.last %}"
        "{{ m['role'] }}: {{ m['content'] }}\n{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}assistant: {% endif %}"
    )
    with pytest.raises(ValueError, match="prefix"):
        transcript_segments(
            PROMPT, "What is 3 + 4, doubled?", [("a", "\nb\n"), ("c", "")], tokenizer, "chat"
        )


def test_segment_cache_encodes_only_new_segments_and_equals_the_one_shot_encoding(tokenizers):
    tokenizer = tokenizers["merging"]
    trajectory = handmade_trajectory()
    pieces = [trajectory.prompt]
    for step in trajectory.steps:
        pieces += [step.action, step.feedback]
    calls = []

    class Counting:
        def __call__(self, texts, **kwargs):
            calls.append(list(texts))
            return tokenizer(texts, **kwargs)

        def __getattr__(self, name):
            return getattr(tokenizer, name)

    cache = SegmentCache(Counting())
    calls.clear()  # finding the leading ids probes the tokenizer once
    for end in (1, 3, len(pieces)):
        segments = tuple(pieces[:end])
        (row,) = cache.encode([("episode", segments)])
        one_shot = tokenize_segments([(text, False) for text in segments], tokenizer)
        assert row == list(one_shot.input_ids)
    assert calls == [pieces[:1], pieces[1:3], [p for p in pieces[3:] if p]]
    (other,) = cache.encode([("episode", ("A different prompt",))])  # not a continuation
    assert other == list(tokenize_segments([("A different prompt", False)], tokenizer).input_ids)


def test_state_ids_are_the_policy_prompt_of_a_state_in_either_layout(tokenizers):
    tokenizer = tokenizers["tiny"]
    trajectory = handmade_trajectory()
    steps = [(step.action, step.feedback) for step in trajectory.steps[:2]]
    sub = decompose_trajectory(trajectory)[2]
    for layout in ("text", "chat"):
        ids = state_ids(trajectory.prompt, trajectory.question, steps, tokenizer, layout)
        assert ids == tokenize_state(sub, tokenizer, layout)
    messages = transcript_messages(trajectory.prompt, trajectory.question, steps)
    (chat,) = chat_prompt_ids(tokenizer, [messages])
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert tokenizer.decode(chat) == rendered
    assert state_ids(trajectory.prompt, trajectory.question, steps, tokenizer, "auto") == (
        state_ids(trajectory.prompt, trajectory.question, steps, tokenizer, "chat")
    )
    with pytest.raises(ValueError, match="prompt_format"):
        state_ids(trajectory.prompt, trajectory.question, steps, tokenizer, "html")
