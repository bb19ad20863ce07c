"""A tiny tokenizer and random-init causal LM, built locally for tests, examples and the CPU demo.

Nothing is downloaded: a byte-level BPE tokenizer is trained on the tasks' own text
(prompts, questions, passages, gold actions), and a Llama-, Qwen2- or Qwen3-shaped model
of a few hundred thousand parameters is initialised from a seed (``build_tiny_qwen3_model``
gives Qwen's special tokens and a chat template of the caller's, for trainers that only
accept templates they know). Both are saved with ``save_pretrained``, so the result
loads through exactly the path a user's model takes::

    path = build_tiny_model("runs/tiny", tiny_corpus(["swirl/SynthMath-v0"]))
    model = AutoModelForCausalLM.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)

Digits are split into single tokens, so numbers the model copies or computes are
spelled the same way everywhere (a 400-800 token vocabulary was enough for the
generated tasks in our measurements; 800 keeps names short).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import gymnasium as gym
    from transformers import PretrainedConfig, PreTrainedModel

    from swirl_envs import Task

BOS_TOKEN = "<|bos|>"
EOS_TOKEN = "<|eos|>"
PAD_TOKEN = "<|pad|>"
TURN_START = "<|im_start|>"
TURN_END = "<|im_end|>"
SPECIAL_TOKENS = (BOS_TOKEN, EOS_TOKEN, PAD_TOKEN, TURN_START, TURN_END)
QWEN3_PAD_TOKEN = "<|endoftext|>"
QWEN3_SPECIAL_TOKENS = (QWEN3_PAD_TOKEN, TURN_START, TURN_END, "<tool_call>", "</tool_call>",
                        "<tool_response>", "</tool_response>", "<think>", "</think>")  # fmt: skip
"""Qwen3's special tokens: what its chat template writes around turns, tool calls and thinking."""

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
"""A ChatML-style template; ``<|im_end|>`` closes every turn (and is an end-of-turn id)."""

Arch = Literal["llama", "qwen2", "qwen3"]


def build_tiny_model(
    out_dir: str | Path,
    texts: Iterable[str],
    *,
    vocab_size: int = 800,
    hidden_size: int = 128,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int | None = None,
    intermediate_size: int = 384,
    max_positions: int = 2048,
    seed: int = 0,
    arch: Arch = "llama",
) -> Path:
    """Train a tokenizer on ``texts``, initialise a tiny model, and save both to ``out_dir``.

    Args:
        out_dir: Directory to write (created if missing); it becomes a normal
            ``from_pretrained`` path.
        texts: Training text for the tokenizer: the tasks' prompts, questions,
            passages and gold actions (see ``tiny_corpus``).
        vocab_size: Target vocabulary size, 256 byte tokens and the special tokens
            included; the trainer stops early when the text has fewer merges.
        hidden_size: Model width.
        num_layers: Transformer blocks.
        num_heads: Attention heads (``hidden_size`` must divide by it).
        num_kv_heads: Key/value heads (grouped-query attention, as in Llama 3, Qwen2 and
            Gemma); ``num_heads`` must divide by it. Defaults to ``num_heads``.
        intermediate_size: MLP width.
        max_positions: Longest sequence the model is configured for.
        seed: Seeds the weight initialisation (the tokenizer is deterministic in the text).
        arch: ``"llama"``, ``"qwen2"`` or ``"qwen3"``: which transformers architecture to use.

    Returns:
        ``out_dir`` as a ``Path``.
    """
    if hidden_size % num_heads:
        raise ValueError(f"hidden_size {hidden_size} is not divisible by num_heads {num_heads}.")
    num_kv_heads = num_kv_heads or num_heads
    if num_heads % num_kv_heads:
        raise ValueError(f"num_heads {num_heads} is not divisible by num_kv_heads {num_kv_heads}.")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tiny_tokenizer(texts, vocab_size=vocab_size)
    config = _model_config(
        arch,
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_layers=num_layers,
        num_heads=num_heads,
        num_kv_heads=num_kv_heads,
        intermediate_size=intermediate_size,
        max_positions=max_positions,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    from transformers import GenerationConfig

    model = _random_model(config, seed)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=[tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(TURN_END)],
        pad_token_id=tokenizer.pad_token_id,
    )
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def train_tiny_tokenizer(texts: Iterable[str], *, vocab_size: int = 800):
    """Train a byte-level BPE tokenizer (single-digit numbers, chat markers, BOS added).

    Returns:
        A ``transformers.PreTrainedTokenizerFast`` with the special tokens and the chat
        template set; it encodes ``text`` as ``<|bos|> text``.
    """
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    backend = _train_bpe(texts, vocab_size, SPECIAL_TOKENS)
    bos_id = backend.token_to_id(BOS_TOKEN)
    backend.post_processor = processors.TemplateProcessing(
        single=f"{BOS_TOKEN} $A",
        pair=f"{BOS_TOKEN} $A $B",
        special_tokens=[(BOS_TOKEN, bos_id)],
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        additional_special_tokens=[TURN_START, TURN_END],
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_tiny_qwen3_model(
    out_dir: str | Path,
    texts: Iterable[str],
    chat_template: str,
    *,
    vocab_size: int = 800,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    intermediate_size: int = 192,
    max_positions: int = 4096,
    seed: int = 0,
) -> Path:
    """A tiny random Qwen3 model whose tokenizer has Qwen's special tokens and ``chat_template``.

    For trainers that recognise a chat template by its text: TRL's GRPOTrainer runs tools
    only with a template it ships (Qwen3's among them), so this model, given that template
    verbatim, renders and parses tool calls exactly as Qwen3 does. Like Qwen3, no BOS is
    added; ``<|im_end|>`` is the end of a turn (EOS) and ``<|endoftext|>`` pads, on the left.

    Args:
        out_dir: Directory to write (created if missing); a normal ``from_pretrained`` path.
        texts: Training text for the tokenizer (see ``tiny_corpus``).
        chat_template: The Jinja chat template, e.g. TRL's ``qwen3.jinja``.
        vocab_size, hidden_size, num_layers, num_heads, intermediate_size, max_positions,
            seed: As for ``build_tiny_model``.

    Returns:
        ``out_dir`` as a ``Path``.
    """
    from transformers import GenerationConfig, PreTrainedTokenizerFast

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=_train_bpe(texts, vocab_size, QWEN3_SPECIAL_TOKENS),
        eos_token=TURN_END,
        pad_token=QWEN3_PAD_TOKEN,
        additional_special_tokens=[
            t for t in QWEN3_SPECIAL_TOKENS if t not in (TURN_END, QWEN3_PAD_TOKEN)
        ],
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = chat_template
    config = _model_config(
        "qwen3",
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_layers=num_layers,
        num_heads=num_heads,
        num_kv_heads=num_heads,
        intermediate_size=intermediate_size,
        max_positions=max_positions,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = _random_model(config, seed)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def tiny_corpus(sources: Iterable[str | gym.Env | Task]) -> Iterator[str]:
    """Yield tokenizer training text from environments or tasks.

    For an env (a gymnasium id or an instance) every task's gold path is replayed,
    so the text is exactly what a policy will read and write: the system prompt,
    the question, each gold action and each tool result. Every passage of the task
    is yielded as well, since search can return any of them. A bare ``Task`` yields
    its question, passages, gold actions and answers.

    Args:
        sources: Gymnasium env ids (made with their default settings), env
            instances (``SwirlEnv`` or wrapped), or ``Task`` records.
    """
    import gymnasium as gym

    from swirl_envs import Task

    for source in sources:
        if isinstance(source, Task):
            yield from _task_texts(source)
            continue
        env = gym.make(source) if isinstance(source, str) else source
        try:
            yield from _env_texts(env.unwrapped)
        finally:
            if isinstance(source, str):
                env.close()


def _env_texts(env) -> Iterator[str]:
    for index, task in enumerate(env.tasks):
        transcript, _ = env.reset(options={"index": index})
        for action in task.gold_path:
            transcript, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                break
        yield transcript
        yield from _passage_texts(task)


def _task_texts(task: Task) -> Iterator[str]:
    yield task.question
    yield from task.gold_path
    yield from task.answers
    yield from _passage_texts(task)


def _passage_texts(task: Task) -> Iterator[str]:
    for passage in task.passages:
        yield f"{passage.title}: {passage.text}"


def _model_config(
    arch: Arch, *, num_layers: int, num_heads: int, num_kv_heads: int, max_positions: int, **kwargs
):
    from transformers import LlamaConfig, Qwen2Config, Qwen3Config

    classes = {"llama": LlamaConfig, "qwen2": Qwen2Config, "qwen3": Qwen3Config}
    if arch not in classes:
        raise ValueError(f"arch must be one of {sorted(classes)}, got {arch!r}.")
    if arch == "qwen3":  # Qwen3 does not derive its head size from the width
        kwargs.setdefault("head_dim", kwargs["hidden_size"] // num_heads)
    return classes[arch](
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        **kwargs,
    )


def _train_bpe(texts: Iterable[str], vocab_size: int, special_tokens: Iterable[str]):
    """A byte-level BPE ``tokenizers.Tokenizer`` trained on ``texts``, digits split one by one."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    return backend


def _random_model(config: PretrainedConfig, seed: int) -> PreTrainedModel:
    """A randomly initialised model from ``config``, seeded; ``fork_rng`` leaves the caller's
    global torch RNG untouched by the initialisation."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return AutoModelForCausalLM.from_config(config)
