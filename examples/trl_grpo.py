"""Train with TRL's GRPOTrainer on a swirl env: the model's tool calls step the env, which scores.

    python examples/trl_grpo.py --model Qwen/Qwen3-0.6B           # your model (a GPU helps)
    python examples/trl_grpo.py --tiny                            # a tiny random Qwen3 on the CPU

The env (default ``swirl/SynthMath-v0``) becomes GRPOTrainer's ``environment_factory``
with ``trl_environment``, its tasks the training set with ``trl_dataset``; the env's
reward (the answer's score) comes through ``get_reward``, and ``--process-judge SPEC`` adds
a SWiRL process judge (the mean of the step verdicts) as a second reward.

A random ``--tiny`` model never writes a tool call, so it is first warmed up by plain
supervised steps on the gold paths, written as the tool calls GRPO will parse, in its
Qwen3 chat template (the template must be one TRL ships). The run then prints, for each
logged step, the mean reward and the tool calls per rollout. Needs ``swirl-gym[trl]``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import torch

from swirl_agents.integrations.trl import (
    build_tiny_trl_model,
    judge_reward_function,
    trl_dataset,
    trl_environment,
)
from swirl_agents.stages import make_env
from swirl_agents.tiny import tiny_corpus
from swirl_envs.actions import ANSWER_ARGUMENT, FinalAnswer, ToolCall

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # environment_factory is experimental


def main() -> None:
    """Parse the flags, build the dataset and env factory, train, print the rewards."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="a Hugging Face causal LM whose chat template TRL knows")
    parser.add_argument("--tiny", action="store_true", help="a tiny random Qwen3, warmed up")
    parser.add_argument("--env-id", default="swirl/SynthMath-v0")
    parser.add_argument("--env-kwargs", default=None, help="JSON of env arguments")
    parser.add_argument("--num-tasks", type=int, default=None, help="training questions")
    parser.add_argument("--steps", type=int, default=None, help="GRPO steps")
    parser.add_argument("--num-generations", type=int, default=4, help="rollouts per question")
    parser.add_argument("--max-completion-length", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument(
        "--process-judge", metavar="SPEC", help="add a process reward: programmatic, hf:PATH"
    )
    parser.add_argument("--out", default="runs/trl_grpo")
    args = parser.parse_args()
    if bool(args.model) == args.tiny:
        parser.error("give exactly one of --model PATH and --tiny")
    env_kwargs = json.loads(args.env_kwargs or "{}")
    if args.tiny and args.env_id == "swirl/SynthMath-v0" and not args.env_kwargs:
        env_kwargs = {"min_ops": 1, "max_ops": 2}  # short problems: the CPU run sees whole episodes
    num_tasks = args.num_tasks or (8 if args.tiny else 1000)
    out = Path(args.out)

    train_dataset = trl_dataset(args.env_id, env_kwargs, num_tasks=num_tasks)
    environment = trl_environment(args.env_id, env_kwargs, num_tasks=num_tasks)
    model = args.model
    if args.tiny:
        torch.set_num_threads(1)  # a model this small runs fastest on one core
        env = make_env(args.env_id, env_kwargs, num_tasks=num_tasks)
        model = str(build_tiny_trl_model(out / "tiny", tiny_corpus([env])))
        player = environment()
        conversations = [gold_conversation(player, row) for row in train_dataset]
        # The tools as GRPOTrainer renders them: the instance's tool methods, by name.
        tools = [getattr(player, t["function"]["name"]) for t in env.unwrapped.tool_schemas]
        began = time.perf_counter()
        warm_up(model, conversations, sorted(tools, key=lambda tool: tool.__name__), steps=150)
        print(f"warmed up in {time.perf_counter() - began:.1f} s")

    from trl import GRPOConfig, GRPOTrainer

    config = GRPOConfig(
        output_dir=str(out / "grpo"),
        max_steps=args.steps or (4 if args.tiny else 200),
        per_device_train_batch_size=args.num_generations,
        num_generations=args.num_generations,
        max_completion_length=args.max_completion_length or (160 if args.tiny else 1024),
        learning_rate=args.lr or (1e-4 if args.tiny else 1e-6),
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        temperature=0.7 if args.tiny else 1.0,  # fewer garbled calls from a tiny model
        use_cpu=args.tiny or not torch.cuda.is_available(),
        seed=0,
    )
    judge = args.process_judge
    rewards = [judge_reward_function(judge, kind="process")] if judge else []
    trainer = GRPOTrainer(
        model=model,
        args=config,
        train_dataset=train_dataset,
        environment_factory=environment,
        reward_funcs=rewards,
    )
    began = time.perf_counter()
    trainer.train()
    print(f"trained {trainer.state.global_step} GRPO steps in {time.perf_counter() - began:.1f} s")
    env_reward = f"rewards/{environment.__name__}/mean"
    for log in trainer.state.log_history:
        if "reward" in log:
            print(
                f"step {log['step']}: reward {log['reward']:.3f} (env {log[env_reward]:.3f}), "
                f"tool calls per rollout {log['tools/call_frequency']:.2f}"
            )


def gold_conversation(environment: Any, row: dict[str, Any]) -> list[dict[str, Any]]:
    """The row's gold path as a tool-calling conversation, played through the TRL adapter.

    Each gold action becomes an assistant tool call; the adapter's tool method runs it,
    and its reply is the tool message (so the replies are the env's, and the answer ends it).
    """
    environment.reset(**row)
    env = environment.env.unwrapped
    messages = list(row["prompt"])
    for action in env.task.gold_path:
        parsed = env.parse_action(action)
        if isinstance(parsed, ToolCall):
            name, arguments = parsed.name, {env.tool(parsed.name).argument: parsed.argument}
        else:
            assert isinstance(parsed, FinalAnswer), parsed
            name, arguments = "answer", {ANSWER_ARGUMENT: parsed.text}
        reply = getattr(environment, name)(**arguments)
        call = {"type": "function", "function": {"name": name, "arguments": arguments}}
        messages.append({"role": "assistant", "content": "", "tool_calls": [call]})
        messages.append({"role": "tool", "name": name, "content": reply})
    assert environment.get_reward() == 1.0, "a gold path scores 1"
    messages.append({"role": "assistant", "content": "Done."})
    return messages


def warm_up(
    model_path: str, conversations: list[list[dict[str, Any]]], tools: list[Any], *, steps: int
) -> None:
    """Supervised steps on the rendered conversations (all tokens), saved over the model."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path)
    texts = [tokenizer.apply_chat_template(c, tools=tools, tokenize=False) for c in conversations]
    batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for step in range(steps):
        loss = model(**batch, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if step % 50 == 0 or step == steps - 1:
            print(f"warm-up step {step}: loss {loss.item():.3f}")
    model.save_pretrained(model_path)


if __name__ == "__main__":
    main()
