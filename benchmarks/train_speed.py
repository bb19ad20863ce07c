"""Training speed: one-pass prefix sharing vs K separate sub-trajectories, and SFT vs TRL.

Three measurements, all in one run, on real SynthMath transcripts with exactly K
actions each (K - 1 calculator calls and an answer):

1. Prefix sharing. One optimizer step on the same B trajectories (all K actions,
   same loss and gradient), laid out three ways:
   - ``one-pass``: B full transcripts, all K actions trained in one forward pass;
   - ``separate, grouped``: the B·K sub-trajectories as K micro-batches (one per
     step k, so little padding), gradients accumulated;
   - ``separate, one batch``: the B·K sub-trajectories in one padded batch.
   Each variant runs in its own process so its peak memory is its own (CPU: peak
   resident memory over the baseline; CUDA: peak allocated memory).
2. SFT throughput of ``swirl_agents.train.Trainer`` vs TRL's ``SFTTrainer`` on the
   same tokenized data (action tokens only in the loss), model and batch size.
3. On CUDA: tokens/s and model FLOPs utilisation (MFU) of one-pass training.

Usage::

    python benchmarks/train_speed.py                       # CPU, a small Llama-shaped model
    python benchmarks/train_speed.py --device cuda --model-config qwen2-0.5b-like

The model is randomly initialised (speed does not depend on the weights); the
tokenizer is the tiny byte-level BPE trained on the transcripts. Prints a table and
writes JSON (``--out``).
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import gc
import json
import multiprocessing
import os
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from swirl_agents.flags import add_flags, from_flags

VARIANTS = ("one-pass", "separate, grouped", "separate, one batch")
MODEL_CONFIGS = {
    "small": {
        "arch": "llama", "hidden_size": 256, "num_layers": 4, "num_heads": 4,
        "num_kv_heads": 4, "intermediate_size": 688,
    },
    "qwen2-0.5b-like": {
        "arch": "qwen2", "hidden_size": 896, "num_layers": 24, "num_heads": 14,
        "num_kv_heads": 2, "intermediate_size": 4864, "vocab_size": 151936,
    },
}  # fmt: skip
"""``small`` runs on a laptop CPU; ``qwen2-0.5b-like`` is Qwen2-0.5B's shape (random weights)."""
PEAK_TFLOPS = {"H100": 989.4, "H200": 989.4, "A100": 312.0, "L40S": 362.1, "A10G": 125.0}
"""Dense bf16 peak of common GPUs, for MFU."""


@dataclass
class Args:
    """Settings of the benchmark."""

    device: str = "cpu"
    """cpu or cuda."""
    model_config: str = "small"
    """Model shape: small or qwen2-0.5b-like (random initialisation)."""
    num_trajectories: int = 8
    """B: trajectories per optimizer step."""
    num_actions: int = 5
    """K: actions per trajectory."""
    steps: int = 5
    """Timed optimizer steps per variant (after the warm-up steps)."""
    warmup: int = 2
    """Untimed steps first (allocator, kernels); at least 1."""
    threads: int = 0
    """CPU threads for torch (0 keeps torch's default)."""
    trl: bool = True
    """Also time TRL's SFTTrainer (needs the trl package)."""
    sft_rounds: int = 3
    """Alternating rounds of the SFT comparison (the median is reported)."""
    peak_tflops: float = 0.0
    """GPU dense bf16 peak for MFU; 0 looks it up from the device name."""
    seed: int = 0
    """Seeds the data and the weights."""
    out: str = "results/train_speed.json"
    """Where to write the JSON results."""


def main() -> None:
    """Run every measurement, print the table and write the JSON."""
    args = parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        setup = prepare(args, Path(scratch))
        results: dict[str, Any] = {"args": dataclasses.asdict(args), "machine": machine(args)}
        results["data"] = setup["stats"]
        results["prefix_sharing"] = {
            name: in_subprocess(run_variant, args, setup, name) for name in VARIANTS
        }
        results["sft"] = compare_sft(args, setup)
    summarise(results)
    print(table(results))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


def parse_args() -> Args:
    """``Args`` from the command line (one flag per field)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_flags(parser, Args)
    args = from_flags(Args, parser.parse_args())
    if args.model_config not in MODEL_CONFIGS:
        parser.error(f"--model-config must be one of {sorted(MODEL_CONFIGS)}")
    if args.warmup < 1 or args.steps < 1:
        parser.error("--warmup and --steps must be at least 1")
    return args


# ---- data and model -----------------------------------------------------------------


def prepare(args: Args, scratch: Path) -> dict[str, Any]:
    """Write the trajectories and a tokenizer + random model to ``scratch``; return their paths."""
    import gymnasium as gym

    import swirl_envs  # noqa: F401
    from swirl_agents.policies.scripted import OraclePolicy
    from swirl_agents.rollout import rollout
    from swirl_agents.tiny import train_tiny_tokenizer

    operations = args.num_actions - 1
    env = gym.make("swirl/SynthMath-v0", min_ops=operations, max_ops=operations, seed=args.seed)
    tasks = args.num_trajectories * (args.steps + args.warmup)
    trajectories = rollout(env, OraclePolicy(), num_tasks=tasks, progress=False).trajectories
    assert all(len(t.steps) == args.num_actions for t in trajectories)
    data = scratch / "trajectories.jsonl"
    data.write_text("".join(json.dumps(t.to_dict()) + "\n" for t in trajectories))
    model_dir = scratch / "model"
    tokenizer = train_tiny_tokenizer([t.transcript for t in trajectories], vocab_size=800)
    tokenizer.save_pretrained(model_dir)
    model_config(args.model_config, tokenizer).save_pretrained(model_dir)
    return {
        "data": str(data),
        "model": str(model_dir),
        "stats": {"trajectories": len(trajectories)},
    }


def model_config(name: str, tokenizer):
    """A transformers config of the named shape, with the tokenizer's special ids."""
    from transformers import LlamaConfig, Qwen2Config

    shape = dict(MODEL_CONFIGS[name])
    arch = shape.pop("arch")
    return {"llama": LlamaConfig, "qwen2": Qwen2Config}[arch](
        hidden_size=shape["hidden_size"],
        num_hidden_layers=shape["num_layers"],
        num_attention_heads=shape["num_heads"],
        num_key_value_heads=shape["num_kv_heads"],
        intermediate_size=shape["intermediate_size"],
        vocab_size=shape.get("vocab_size", len(tokenizer)),
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def load(setup: dict[str, Any], args: Args):
    """The random model (fp32 weights) on the device, its tokenizer and the trajectories."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from swirl_agents.store import load_trajectories

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    config = AutoConfig.from_pretrained(setup["model"])
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).to(args.device)
    tokenizer = AutoTokenizer.from_pretrained(setup["model"])
    return model, tokenizer, list(load_trajectories(setup["data"]))


# ---- measurements (each runs in a fresh process) ---------------------------------------


def run_variant(args: Args, setup: dict[str, Any], name: str) -> dict[str, Any]:
    """Time optimizer steps of one layout of the same data; report time, tokens and memory."""
    import torch

    from swirl_agents.decompose import decompose_trajectory, tokenize_sub_trajectory
    from swirl_agents.train.data import TrainExample, collate, count_units, offline_examples
    from swirl_agents.train.losses import stepwise_loss

    model, tokenizer, trajectories = load(setup, args)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    pad = tokenizer.pad_token_id
    batches = [
        trajectories[i : i + args.num_trajectories]
        for i in range(0, len(trajectories), args.num_trajectories)
    ]

    def layout(batch):
        """The forward passes of one optimizer step, as lists of examples."""
        if name == "one-pass":
            return [offline_examples(batch, tokenizer, max_length=4096, weighting="uniform")]
        subs = [
            TrainExample(tokenize_sub_trajectory(sub, tokenizer, "text"), (1.0,))
            for t in batch
            for sub in decompose_trajectory(t)
        ]
        if name == "separate, one batch":
            return [subs]
        # Sub-trajectories come trajectory by trajectory, so every K-th one is the same step k.
        return [subs[k :: args.num_actions] for k in range(args.num_actions)]

    def step(passes):
        units = sum(count_units(group, "action_mean") for group in passes)
        tokens = 0
        for group in passes:
            batch = collate(group, pad).to(args.device)
            keep, labels, action_index = batch.trained_positions()
            with autocast(args):
                logits = model(
                    input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                    use_cache=False, logits_to_keep=keep,
                ).logits  # fmt: skip
            loss = stepwise_loss(logits, labels, action_index, batch.weights, normalizer=units)
            loss.backward()
            tokens += batch.num_tokens
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return tokens

    prepared = [layout(batch) for batch in batches]
    memory = MemoryMeter(args.device)
    seconds, tokens, padded = [], [], []
    for number, passes in enumerate(prepared):
        if number == args.warmup:
            memory.reset()
        synchronize(args.device)
        started = time.perf_counter()
        count = step(passes)
        synchronize(args.device)
        if number >= args.warmup:
            seconds.append(time.perf_counter() - started)
            tokens.append(count)
            padded.append(sum(max(len(e.tokens.input_ids) for e in g) * len(g) for g in passes))
    result = {
        "step_seconds": statistics.median(seconds),
        "tokens_per_step": statistics.mean(tokens),
        "padded_tokens_per_step": statistics.mean(padded),
        "forward_passes_per_step": len(prepared[0]),
        "peak_memory_mb": memory.peak_mb(),
    }
    if args.device.startswith("cuda"):
        result.update(model_flops(model, prepared[args.warmup :], result["step_seconds"], args))
    return result


def compare_sft(args: Args, setup: dict[str, Any]) -> dict[str, Any]:
    """This trainer vs TRL in alternating rounds, so that a busy machine slows both alike.

    Each trainer reports the median of its rounds' tokens/s (every round is listed).
    """
    runners = {"swirl": run_swirl_sft}
    if args.trl:
        runners["trl"] = run_trl_sft
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in runners}
    for _ in range(args.sft_rounds):
        for name, runner in runners.items():
            rounds[name].append(in_subprocess(runner, args, setup))
    results = {}
    for name, runs in rounds.items():
        if "skipped" in runs[0]:
            results[name] = runs[0]
            continue
        results[name] = {
            "tokens_per_s": statistics.median(run["tokens_per_s"] for run in runs),
            "step_seconds": statistics.median(run["step_seconds"] for run in runs),
            "peak_memory_mb": max(run["peak_memory_mb"] for run in runs),
            "tokens_per_s_rounds": [run["tokens_per_s"] for run in runs],
        }
        results[name].update({k: v for k, v in runs[0].items() if k == "trl_version"})
    return results


def run_swirl_sft(args: Args, setup: dict[str, Any]) -> dict[str, Any]:
    """Tokens/s of this project's trainer, SFT objective, one micro-batch per step."""
    from swirl_agents.train import TrainConfig, Trainer

    model, tokenizer, trajectories = load(setup, args)
    with tempfile.TemporaryDirectory() as out:
        config = TrainConfig(
            out_dir=out, objective="sft", steps=args.steps + args.warmup,
            batch_size=args.num_trajectories, micro_batch_size=args.num_trajectories,
            lr=1e-5, lr_schedule="constant", prompt_format="text", device=args.device,
            progress=False, seed=args.seed,
        )  # fmt: skip
        memory = MemoryMeter(args.device)
        trainer = Trainer(config, model, tokenizer, trajectories)
        seconds, tokens = [], []
        for number in range(config.steps):
            if number == args.warmup:
                memory.reset()
            metrics = trainer.train_step()
            if number >= args.warmup:
                seconds.append(metrics["seconds"])
                tokens.append(metrics["tokens"])
    return {"tokens_per_s": sum(tokens) / sum(seconds), "step_seconds": statistics.median(seconds),
            "peak_memory_mb": memory.peak_mb()}  # fmt: skip


def run_trl_sft(args: Args, setup: dict[str, Any]) -> dict[str, Any]:
    """Tokens/s of TRL's SFTTrainer on the same token ids and action masks."""
    try:
        from trl import SFTConfig, SFTTrainer
    except ImportError:
        return {"skipped": "trl is not installed"}
    import trl
    from datasets import Dataset
    from transformers import TrainerCallback

    from swirl_agents.decompose import tokenize_trajectory

    model, tokenizer, trajectories = load(setup, args)
    rows = []
    for trajectory in trajectories:
        tokens = tokenize_trajectory(trajectory, tokenizer, "text").truncate(4096)
        rows.append({"input_ids": list(tokens.input_ids), "completion_mask": tokens.action_mask})
    timer = _StepTimer(args.device)
    memory = MemoryMeter(args.device)

    class Timing(TrainerCallback):
        """Times each step from the end of the one before, data loading included (as ours)."""

        def on_step_end(self, _args, state, control, **kwargs):
            timer.lap(state.global_step > args.warmup)
            if state.global_step == args.warmup:
                memory.reset()
                timer.lap(False)

    with tempfile.TemporaryDirectory() as out:
        config = SFTConfig(
            output_dir=out, per_device_train_batch_size=args.num_trajectories,
            max_steps=args.steps + args.warmup, learning_rate=1e-5, lr_scheduler_type="constant",
            completion_only_loss=True, max_length=None, report_to="none", save_strategy="no",
            logging_strategy="no", bf16=args.device.startswith("cuda"),
            use_cpu=args.device == "cpu", dataloader_num_workers=0, seed=args.seed,
            disable_tqdm=True, gradient_checkpointing=False,  # TRL turns it on by default
        )  # fmt: skip
        trainer = SFTTrainer(
            model=model, args=config, train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer, callbacks=[Timing()],
        )  # fmt: skip
        trainer.train()
    # Tokens per step: the same examples in the same batch size (TRL shuffles the order).
    lengths = sorted(len(row["input_ids"]) for row in rows)
    per_step = statistics.mean(lengths) * args.num_trajectories
    return {
        "tokens_per_s": per_step * len(timer.seconds) / sum(timer.seconds),
        "step_seconds": statistics.median(timer.seconds),
        "peak_memory_mb": memory.peak_mb(),
        "trl_version": trl.__version__,
    }


# ---- helpers -------------------------------------------------------------------------


class _StepTimer:
    """Wall time between consecutive optimizer steps, synchronised on CUDA."""

    def __init__(self, device: str):
        self.device = device
        self.seconds: list[float] = []
        self._last = 0.0

    def lap(self, keep: bool) -> None:
        synchronize(self.device)
        now = time.perf_counter()
        if keep:
            self.seconds.append(now - self._last)
        self._last = now


class MemoryMeter:
    """Peak memory since ``reset``: allocated CUDA memory, or CPU resident memory over the start."""

    def __init__(self, device: str):
        self.device = device
        self.baseline_kb = 0

    def reset(self) -> None:
        import torch

        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            self.baseline_kb = torch.cuda.memory_allocated() // 1024
            torch.cuda.reset_peak_memory_stats()
            return
        # Hand the memory freed by the warm-up steps back to the kernel, so that the steps
        # measured must grow the resident set to use it again; then writing 5 to
        # clear_refs resets the peak-RSS counter (VmHWM) to the current RSS.
        gc.collect()
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        Path("/proc/self/clear_refs").write_text("5")
        self.baseline_kb = _status_kb("VmRSS")

    def peak_mb(self) -> float:
        import torch

        if self.device.startswith("cuda"):
            return (torch.cuda.max_memory_allocated() // 1024 - self.baseline_kb) / 1024
        return (_status_kb("VmHWM") - self.baseline_kb) / 1024


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def autocast(args: Args):
    """bf16 autocast on CUDA (as the trainer does), nothing on CPU."""
    import contextlib

    import torch

    if args.device.startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def synchronize(device: str) -> None:
    """Wait for queued CUDA work so wall-clock timings are real."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def model_flops(model, steps: list, step_seconds: float, args: Args) -> dict[str, float]:
    """Achieved model TFLOP/s and MFU of a step (PaLM's accounting: 6·N per token plus attention).

    N counts the transformer blocks for every token and the LM head only for the
    positions it runs on (the trained ones); attention adds 12·L·H·T per token.
    """
    import torch

    config = model.config
    hidden, layers, vocab = config.hidden_size, config.num_hidden_layers, config.vocab_size
    embedding = vocab * hidden
    body = sum(p.numel() for p in model.parameters()) - embedding  # tied head: counted once below
    flops = []
    for passes in steps:
        total = 0.0
        for group in passes:
            lengths = [len(e.tokens.input_ids) for e in group]
            kept = sum(e.num_action_tokens for e in group)
            total += sum(6 * body * t + 12 * layers * hidden * t * t for t in lengths)
            total += 6 * embedding * kept
        flops.append(total)
    achieved = statistics.mean(flops) / step_seconds
    peak = args.peak_tflops or next(
        (v for k, v in PEAK_TFLOPS.items() if k in torch.cuda.get_device_name()), 0.0
    )
    return {"model_tflops": achieved / 1e12, "mfu": achieved / (peak * 1e12) if peak else None}


def in_subprocess(function, *arguments) -> dict[str, Any]:
    """Run ``function(*arguments)`` in a fresh process and return its result."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(function, arguments)


def machine(args: Args) -> dict[str, Any]:
    """Where the numbers come from."""
    import torch

    info = {"platform": platform.platform(), "torch": torch.__version__, "cpus": os.cpu_count(),
            "torch_threads": args.threads or torch.get_num_threads()}  # fmt: skip
    if args.device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name()
    return info


def summarise(results: dict[str, Any]) -> None:
    """Add speed-ups, memory ratios and the targets' verdicts."""
    prefix = results["prefix_sharing"]
    base = prefix["one-pass"]
    k = results["args"]["num_actions"]
    for name in VARIANTS:
        row = prefix[name]
        row["speedup_of_one_pass"] = row["step_seconds"] / base["step_seconds"]
        row["memory_ratio_to_one_pass"] = row["peak_memory_mb"] / max(base["peak_memory_mb"], 1e-9)
        row["token_ratio_to_one_pass"] = row["tokens_per_step"] / base["tokens_per_step"]
    target = 0.7 * (k + 1) / 2
    grouped, batched = prefix["separate, grouped"], prefix["separate, one batch"]
    sft = results["sft"]
    results["targets"] = {
        "prefix_speedup_target": target,
        "prefix_speedup_vs_grouped_met": grouped["speedup_of_one_pass"] >= target,
        "lower_peak_memory_than_one_batch": base["peak_memory_mb"] < batched["peak_memory_mb"],
        "lower_peak_memory_than_grouped": base["peak_memory_mb"] < grouped["peak_memory_mb"],
    }
    if "tokens_per_s" in sft.get("trl", {}):
        ratio = sft["swirl"]["tokens_per_s"] / sft["trl"]["tokens_per_s"]
        results["targets"]["sft_tokens_per_s_ratio_to_trl"] = ratio
        results["targets"]["sft_at_least_trl"] = ratio >= 1.0


def table(results: dict[str, Any]) -> str:
    """The results as a markdown table."""
    lines = [
        "| layout (same B·K actions, one optimizer step) | step s | tokens/step | forward passes "
        "| peak MB | one-pass speed-up | memory vs one-pass |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in results["prefix_sharing"].items():
        lines.append(
            f"| {name} | {row['step_seconds']:.3f} | {row['tokens_per_step']:.0f} | "
            f"{row['forward_passes_per_step']} | {row['peak_memory_mb']:.0f} | "
            f"{row['speedup_of_one_pass']:.2f}x | {row['memory_ratio_to_one_pass']:.2f}x |"
        )
    base = results["prefix_sharing"]["one-pass"]
    if "mfu" in base:
        mfu = f"{100 * base['mfu']:.1f}%" if base["mfu"] is not None else "n/a"
        tokens_per_s = base["tokens_per_step"] / base["step_seconds"]
        lines += [
            "",
            f"one-pass: {tokens_per_s:.0f} tokens/s, {base['model_tflops']:.1f} TFLOP/s, MFU {mfu}",
        ]
    lines += ["", "| SFT trainer | tokens/s | step s | peak MB |", "|---|---|---|---|"]
    for name, row in results["sft"].items():
        if "tokens_per_s" in row:
            lines.append(
                f"| {name} | {row['tokens_per_s']:.0f} | {row['step_seconds']:.3f} | "
                f"{row['peak_memory_mb']:.0f} |"
            )
        else:
            lines.append(f"| {name} | {row['skipped']} | | |")
    lines += ["", "targets: " + json.dumps(results["targets"])]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
