"""Offline SWiRL in plain torch: a readable spec of the objective the library's trainer optimises.

SWiRL (Goldie et al. 2025) trains on logged multi-step trajectories. A trajectory with K
actions is decomposed into K sub-trajectories (s_k, a_k), where the state s_k is the whole
transcript before action k, and a process judge scores each step: R(a_k | s_k). SWiRL
maximises J(θ) = E_{s, a}[R(a|s)] over these steps; offline, on the logged actions, that is
reward-weighted maximum likelihood, written out here as one loss over a batch of trajectories:

    loss = (1 / N) · Σ_trajectories Σ_k  w_k · mean_{t ∈ a_k} −log π_θ(t | s_k, a_k before t)

with w_k the judge's score of step k and N the number of actions in the batch (steps
judged 0 count in N too: they add nothing to the sum, they do not raise the others' weight).

It is the library's `swirl train --objective swirl-offline` (reduction `action_mean`,
`--weighting judge`) with `--prompt-format text`: the model reads the env's transcript as
plain text. `tests/test_minimal_example.py` checks that the loss and every parameter's
gradient equal the library trainer's on the same batch.

    python examples/swirl_offline_minimal.py --model PATH --data judged.jsonl --steps 20 --lr 1e-5

`--data` is a trajectory store whose steps were judged (`swirl judge --process`, usually
then `swirl filter`); `--model` any Hugging Face causal LM, local path or name.
"""

from __future__ import annotations

import argparse
import random

import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, AutoTokenizer

from swirl_agents.store import load_trajectories  # reads the JSONL of Trajectory records

# ---- the data: step rewards and the decomposition into (s_k, a_k) ----------------------


def step_weights(trajectory) -> list[float]:
    """R(a_k | s_k) for every step: the process judge's score, stored with the trajectory."""
    process = (trajectory.meta.get("judgements") or {}).get("process")
    if process is None or len(process) != len(trajectory.steps):
        raise ValueError(f"episode {trajectory.key} needs one process judgement per step")
    # A verdict the judge's output did not give (score null) counts as a bad step.
    return [0.0 if judged["score"] is None else float(judged["score"]) for judged in process]


def leading_special_ids(tokenizer) -> list[int]:
    """What the tokenizer puts before any text: [BOS] for Llama-style tokenizers, [] for GPT-2."""
    full = tokenizer("probe")["input_ids"]
    bare = tokenizer("probe", add_special_tokens=False)["input_ids"]
    start = next(i for i in range(len(full)) if full[i : i + len(bare)] == bare)
    return full[:start]  # an EOS some tokenizers append after the text is left out


def tokenize(trajectory, tokenizer, max_length: int) -> tuple[list[int], list[tuple[int, int]]]:
    """The ids of the full transcript and the (start, end) token span of each action a_k.

    The transcript is prompt, a_0, feedback_0, a_1, feedback_1, ... (feedback = the tool's
    answer). Each piece is encoded on its own, without special tokens, and the ids are joined
    after the leading BOS. Encoding the whole string at once could merge a token across the
    end of an action; piece by piece, ids[:end_k] is exactly the encoding of (s_k, a_k), so the
    K sub-trajectories are prefixes of one sequence and one forward pass scores all of them.
    """
    ids, spans = leading_special_ids(tokenizer), []
    pieces = [(trajectory.prompt, False)]
    for step in trajectory.steps:
        pieces += [(step.action, True), (step.feedback, False)]
    for text, is_action in pieces:
        start = len(ids)
        if text:
            ids += tokenizer(text, add_special_tokens=False)["input_ids"]
        if is_action:
            spans.append((start, len(ids)))
    # Too long: keep the actions that end within max_length (never half an action).
    spans = [(start, end) for start, end in spans if end <= max_length]
    if not spans:
        raise ValueError(f"episode {trajectory.key}: no action ends within {max_length} tokens")
    return ids[: spans[-1][1]], spans


# ---- the objective ----------------------------------------------------------------------


def swirl_loss(model, tokenizer, trajectories, max_length: int = 2048) -> torch.Tensor:
    """The offline SWiRL loss of a batch of judged trajectories (module docstring)."""
    device = next(model.parameters()).device
    examples = []
    for trajectory in trajectories:
        ids, spans = tokenize(trajectory, tokenizer, max_length)
        examples.append((ids, spans, step_weights(trajectory)[: len(spans)]))
    # N: every action with at least one token, over the whole batch.
    num_actions = sum(end > start for _, spans, _ in examples for start, end in spans)
    total = torch.zeros((), device=device)
    for ids, spans, weights in examples:
        # One forward pass over the full transcript; position p predicts token p + 1.
        input_ids = torch.tensor([ids], device=device)
        logits = model(input_ids=input_ids).logits[0, :-1].float()
        nll = F.cross_entropy(logits, input_ids[0, 1:], reduction="none")
        for (start, end), weight in zip(spans, weights, strict=True):
            # The loss mask of a_k: its tokens ids[start:end] are predicted at positions
            # start-1 .. end-2. Everything else (prompt, tool answers) is context only.
            action_nll = nll[max(start - 1, 0) : end - 1]
            if action_nll.numel():
                # Mean over the action's tokens (each step counts the same whatever its
                # length), weighted by the step's reward.
                total = total + weight * action_nll.mean()
    return total / max(num_actions, 1)


# ---- training ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> list[float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="Hugging Face causal LM: path or name")
    parser.add_argument("--data", required=True, help="judged trajectories (JSONL)")
    parser.add_argument("--steps", type=int, default=10, help="optimizer steps")
    parser.add_argument("--lr", type=float, default=1e-5, help="AdamW learning rate")
    parser.add_argument("--batch-size", type=int, default=8, help="trajectories per step")
    parser.add_argument("--max-length", type=int, default=2048, help="longest sequence (tokens)")
    parser.add_argument("--out", help="save the trained model and tokenizer here")
    args = parser.parse_args(argv)

    device = "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    model.to(device).train()
    trajectories = list(load_trajectories(args.data))
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    rng = random.Random(0)
    losses = []
    for step in range(1, args.steps + 1):
        # A batch of whole trajectories; all K steps of each are trained together.
        batch = rng.sample(trajectories, min(args.batch_size, len(trajectories)))
        loss = swirl_loss(model, tokenizer, batch, args.max_length)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # the library's default clip
        optimizer.step()
        losses.append(loss.item())
        print(f"step {step}: loss {loss.item():.4f}")
    if args.out:
        model.save_pretrained(args.out)
        tokenizer.save_pretrained(args.out)
    return losses


if __name__ == "__main__":
    main()
