"""Drive a swirl env with any OpenAI-compatible server (vLLM, SGLang, Ollama, a hosted API).

    vllm serve Qwen/Qwen2.5-1.5B-Instruct --port 8000
    python examples/endpoint_agent.py --base-url http://127.0.0.1:8000/v1 \\
        --model Qwen/Qwen2.5-1.5B-Instruct --env swirl/SynthMath-v0 --episodes 50
    # a base (non-chat) model reads the transcript through /completions:
    python examples/endpoint_agent.py --api completions ...

With ``--api chat`` each request sends the env's chat messages (``info["messages"]``);
with ``--api completions`` it sends the transcript, SWiRL's state s_k. The rollout
engine keeps ``--batch-size`` episodes live and sends their requests concurrently,
with retries and backoff; generation stops at the closing tag of a tool call or an
answer. The API key, if the server needs one, is read from ``$OPENAI_API_KEY``.
"""

from __future__ import annotations

import argparse
import json
from contextlib import nullcontext

import gymnasium as gym

import swirl_envs
from swirl_agents.policies import SamplingSettings
from swirl_agents.policies.openai_compat import OpenAIPolicy
from swirl_agents.rollout import rollout
from swirl_agents.store import TrajectoryStore

gym.register_envs(swirl_envs)


def main() -> None:
    """Play ``--episodes`` test questions through the endpoint and print the accuracy."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8000/v1", help="the API root")
    parser.add_argument("--model", required=True, help="the served model's name")
    parser.add_argument("--env", default="swirl/SynthMath-v0", help="a swirl env id")
    parser.add_argument("--env-kwargs", default='{"split": "test"}', help="JSON env arguments")
    parser.add_argument("--episodes", type=int, default=20, help="questions to play, one each")
    parser.add_argument("--api", choices=("chat", "completions"), default="chat")
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--max-new-tokens", type=int, default=256, help="longest action")
    parser.add_argument("--batch-size", type=int, default=8, help="episodes (requests) at once")
    parser.add_argument("--out", help="append the trajectories to this JSONL store")
    args = parser.parse_args()

    env = gym.make(args.env, **json.loads(args.env_kwargs))
    sampling = SamplingSettings(temperature=args.temperature, max_new_tokens=args.max_new_tokens)
    policy = OpenAIPolicy(
        args.base_url, args.model, api=args.api, sampling=sampling, concurrency=args.batch_size
    )
    with policy, TrajectoryStore(args.out) if args.out else nullcontext() as store:
        result = rollout(
            env, policy, batch_size=args.batch_size, num_tasks=args.episodes, store=store
        )
    if result.trajectories:
        print(result.trajectories[0].transcript, end="\n\n")
    print(result.summary.format())
    print(f"accuracy on {result.summary.episodes} episodes: {result.summary.accuracy:.3f}")


if __name__ == "__main__":
    main()
