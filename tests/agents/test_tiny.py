"""The tiny model factory: a local tokenizer and model that load like any HF checkpoint."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from swirl_agents.tiny import TURN_END, build_tiny_model, tiny_corpus  # noqa: E402
from swirl_envs import Passage, Task  # noqa: E402
from swirl_envs.env import SwirlEnv  # noqa: E402
from swirl_envs.tools.base import Tool, ToolResult  # noqa: E402


class LookupTool(Tool):
    """Returns the passage whose title is the argument (enough to exercise the corpus)."""

    name, tag, argument, description = "search", "search_query", "query", "Look up a title."

    def __call__(self, argument: str, task: Task) -> ToolResult:
        for passage in task.passages:
            if passage.title == argument:
                return ToolResult(passage.text)
        return ToolResult("No result.", ok=False)


TASKS = [
    Task(
        id=f"t{i}",
        question=f"Where was Person{i} born?",
        answers=(f"City{i}",),
        gold_path=(f"<search_query>Person{i}</search_query>", f"<answer>City{i}</answer>"),
        passages=(Passage(f"Person{i}", f"Person{i} was born in City{i} in 19{i}7."),),
    )
    for i in range(6)
]


def make_env() -> SwirlEnv:
    return SwirlEnv(TASKS, [LookupTool()], system_prompt="Answer. {max_steps} steps.", max_steps=3)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    texts = list(tiny_corpus([make_env()])) * 5
    return build_tiny_model(tmp_path_factory.mktemp("tiny"), texts, vocab_size=400, seed=3)


def test_tiny_model_loads_through_auto_classes_with_tied_embeddings(tiny_dir):
    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_dir)
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_dir)
    parameters = sum(p.numel() for p in model.parameters())
    assert 100_000 < parameters < 5_000_000
    assert model.config.tie_word_embeddings
    assert model.get_input_embeddings().weight is model.get_output_embeddings().weight
    assert model.config.vocab_size == len(tokenizer) <= 400
    assert tokenizer.padding_side == "left"
    assert {tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.bos_token_id} == {
        model.config.pad_token_id,
        model.config.eos_token_id,
        model.config.bos_token_id,
    }


def test_tokenizer_splits_digits_and_round_trips_text(tiny_dir):
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_dir)
    text = "Person3 was born in City3 in 1937. <answer>Ünïcode 4096</answer>"
    ids = tokenizer(text).input_ids
    assert ids[0] == tokenizer.bos_token_id
    assert tokenizer.decode(ids, skip_special_tokens=True) == text
    pieces = tokenizer.convert_ids_to_tokens(tokenizer("12345", add_special_tokens=False).input_ids)
    assert pieces == ["1", "2", "3", "4", "5"]


def test_chat_template_marks_turns_and_generation_prompt(tiny_dir):
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_dir)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == (
        "<|bos|><|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )
    generation = transformers.GenerationConfig.from_pretrained(tiny_dir)
    assert tokenizer.convert_tokens_to_ids(TURN_END) in generation.eos_token_id


def test_same_seed_gives_same_weights_and_other_seed_differs(tmp_path, tiny_dir):
    texts = list(tiny_corpus(TASKS))
    first = build_tiny_model(tmp_path / "a", texts, vocab_size=300, seed=7, hidden_size=32)
    second = build_tiny_model(tmp_path / "b", texts, vocab_size=300, seed=7, hidden_size=32)
    other = build_tiny_model(tmp_path / "c", texts, vocab_size=300, seed=8, hidden_size=32)
    load = transformers.AutoModelForCausalLM.from_pretrained
    weights = [load(path).get_input_embeddings().weight for path in (first, second, other)]
    assert torch.equal(weights[0], weights[1])
    assert not torch.equal(weights[0], weights[2])
    assert (first / "tokenizer.json").read_text() == (second / "tokenizer.json").read_text()


def test_qwen2_architecture_with_grouped_query_attention_builds_and_generates(tmp_path):
    path = build_tiny_model(
        tmp_path, tiny_corpus(TASKS), vocab_size=300, hidden_size=32, num_kv_heads=2, arch="qwen2"
    )
    model = transformers.AutoModelForCausalLM.from_pretrained(path)
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    assert model.config.model_type == "qwen2"
    assert (model.config.num_attention_heads, model.config.num_key_value_heads) == (4, 2)
    inputs = tokenizer(["Where was"], return_tensors="pt")
    output = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert output.shape == (1, inputs.input_ids.shape[1] + 3)


def test_bad_settings_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="arch"):
        build_tiny_model(tmp_path, ["some text"], arch="gpt9")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="divisible"):
        build_tiny_model(tmp_path, ["some text"], hidden_size=30, num_heads=4)
    with pytest.raises(ValueError, match="num_kv_heads 3"):
        build_tiny_model(tmp_path, ["some text"], hidden_size=32, num_heads=4, num_kv_heads=3)


def test_corpus_from_env_is_the_gold_transcripts_and_passages():
    env = make_env()
    texts = list(tiny_corpus([env]))
    assert len(texts) == 2 * len(TASKS)
    transcript = texts[0]
    assert transcript.startswith(env.system_prompt)
    assert "<search_query>Person0</search_query>" in transcript
    assert "Person0 -> Person0 was born in City0 in 1907." in transcript
    assert transcript.endswith("<answer>City0</answer>")
    assert texts[1] == "Person0: Person0 was born in City0 in 1907."


def test_corpus_from_task_yields_its_text():
    texts = list(tiny_corpus(TASKS[:1]))
    assert texts == [
        "Where was Person0 born?",
        "<search_query>Person0</search_query>",
        "<answer>City0</answer>",
        "City0",
        "Person0: Person0 was born in City0 in 1907.",
    ]
