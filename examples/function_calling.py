"""Play a swirl env with any OpenAI-compatible chat-completions endpoint and its tool calls.

Every env publishes its tools as OpenAI function schemas (``env.unwrapped.tool_schemas``,
the final ``answer`` included). Each turn sends the conversation with ``tools=``; the
model's tool call becomes the env's action (the JSON ``{"name", "arguments"}`` form the
env parses) and the env's reply goes back as a ``tool`` message. A reply without a tool
call is sent as text, so a model may also answer with tags.

    # a local vLLM / SGLang / Ollama server:
    python examples/function_calling.py --base-url http://127.0.0.1:8000/v1 --model MODEL
    # a hosted API (the key is read from $OPENAI_API_KEY):
    python examples/function_calling.py --base-url https://api.openai.com/v1 --model MODEL
    # a local scripted endpoint that replays the gold path (no model needed):
    python examples/function_calling.py --self-test

The base URL also comes from ``OPENAI_BASE_URL`` and the key from the variable named by
``--api-key-env`` (keys never go on the command line).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import gymnasium as gym
import httpx

import swirl_envs
from swirl_envs.actions import ANSWER_ARGUMENT, ANSWER_NAME, FinalAnswer, ToolCall, parse_action

gym.register_envs(swirl_envs)


@dataclass
class Args:
    env_id: str = "swirl/SynthMath-v0"
    """the env to play"""
    env_kwargs: str = "{}"
    """JSON of env arguments, e.g. '{"split": "test"}'"""
    base_url: str = os.environ.get("OPENAI_BASE_URL", "http://127.0.0.1:8000/v1")
    """the OpenAI-compatible endpoint (vLLM, SGLang, Ollama, a hosted API)"""
    model: str = "default"
    """the model name the endpoint serves"""
    api_key_env: str = "OPENAI_API_KEY"
    """the environment variable that holds the API key (if the endpoint needs one)"""
    episodes: int = 5
    """episodes to play"""
    seed: int = 0
    """seed of the first episode (the others follow)"""
    temperature: float = 0.0
    """sampling temperature"""
    timeout: float = 120.0
    """seconds to wait for one completion"""
    self_test: bool = False
    """play against a local endpoint that replays the gold path (checks the loop, no model)"""


def play_episode(env: gym.Env, http: httpx.Client, args: Args, seed: int) -> dict[str, float]:
    """Play one episode: ask for a tool call, step the env with it, return the tool's result."""
    _, info = env.reset(seed=seed)
    messages: list[dict[str, Any]] = list(info["messages"])
    tools = env.unwrapped.tool_schemas
    reward, steps, tool_calls, done = 0.0, 0, 0, False
    while not done:  # the env's step budget bounds the loop
        message = complete(http, args, messages, tools)
        call = (message.get("tool_calls") or [None])[0]
        if call is not None:
            function = call.get("function") or {}
            action = json.dumps(
                {"name": function.get("name"), "arguments": function.get("arguments")}
            )
            # Only the call the env executes is kept, so every call in the history has a result.
            messages.append(
                {"role": "assistant", "content": message.get("content"), "tool_calls": [call]}
            )
        else:
            action = message.get("content") or ""
            messages.append({"role": "assistant", "content": action})
        _, reward, terminated, truncated, info = env.step(action)
        done, steps = terminated or truncated, steps + 1
        tool_calls += info["tool"] is not None
        feedback = info["feedback"].strip()
        if call is not None and not terminated:
            messages.append(
                {"role": "tool", "tool_call_id": call.get("id", ""), "content": feedback}
            )
        elif feedback:
            messages.append({"role": "user", "content": feedback})
    return {"reward": float(reward), "steps": steps, "tool_calls": tool_calls}


def complete(
    http: httpx.Client, args: Args, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
) -> dict[str, Any]:
    """One chat completion with tools; returns the assistant message (empty if malformed)."""
    body = {
        "model": args.model,
        "messages": messages,
        "tools": tools,
        "temperature": args.temperature,
    }
    response = http.post("/chat/completions", json=body)
    if response.status_code >= 400:
        raise RuntimeError(f"The endpoint answered {response.status_code}: {response.text[:500]}")
    try:
        message = response.json()["choices"][0]["message"]
    except (ValueError, KeyError, IndexError, TypeError):
        return {}  # the env answers an empty action with an error, and the step counts
    return message if isinstance(message, dict) else {}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Play ``--episodes`` episodes and print success, steps and tool calls."""
    args = parse_args(argv)
    env = gym.make(args.env_id, **json.loads(args.env_kwargs))
    results = []
    with scripted_endpoint(env) if args.self_test else nullcontext() as endpoint:
        base_url = endpoint or args.base_url
        key = os.environ.get(args.api_key_env, "")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        with httpx.Client(base_url=base_url, headers=headers, timeout=args.timeout) as http:
            for episode in range(args.episodes):
                results.append(play_episode(env, http, args, seed=args.seed + episode))
                print(f"episode {episode}: {results[-1]}")
    env.close()
    summary = {
        "episodes": len(results),
        "success": sum(r["reward"] for r in results) / len(results),
        "mean_steps": sum(r["steps"] for r in results) / len(results),
        "tool_calls": sum(r["tool_calls"] for r in results),
    }
    print(json.dumps(summary))
    return summary


@contextmanager
def scripted_endpoint(env: gym.Env) -> Iterator[str]:
    """A local OpenAI-compatible endpoint whose "model" replays the env's gold path.

    It checks what a real endpoint relies on (the tools are sent, every tool call in the
    history is answered by a ``tool`` message with its id) and answers 400 otherwise.
    """
    tools = {tool.name: tool.argument for tool in env.unwrapped.tools}
    tools[ANSWER_NAME] = ANSWER_ARGUMENT

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the http.server API)
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            problem = _protocol_problem(request, env.unwrapped.tool_schemas)
            if problem:
                return self._send(400, {"error": {"message": problem}})
            step = sum(message["role"] == "assistant" for message in request["messages"])
            gold = parse_action(env.unwrapped.task.gold_path[step], env.unwrapped.tools)
            if isinstance(gold, ToolCall):
                name, value = gold.name, gold.argument
            else:  # a gold path ends in the answer
                assert isinstance(gold, FinalAnswer), gold
                name, value = ANSWER_NAME, gold.text
            call = {
                "id": f"call_{step}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps({tools[name]: value})},
            }
            message = {"role": "assistant", "content": None, "tool_calls": [call]}
            self._send(
                200, {"object": "chat.completion", "choices": [{"index": 0, "message": message}]}
            )

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:  # keep the example's output readable
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _protocol_problem(request: dict[str, Any], tools: list[dict[str, Any]]) -> str:
    if request.get("tools") != tools:
        return "the request does not carry the env's tool schemas"
    pending: set[str] = set()
    for message in request.get("messages", []):
        if message.get("role") == "tool":
            pending.discard(message.get("tool_call_id"))
        elif pending:
            return f"tool calls {sorted(pending)} have no tool message"
        pending |= {call["id"] for call in message.get("tool_calls") or []}
    return ""


def parse_args(argv: Sequence[str] | None) -> Args:
    """Read ``Args`` from the command line (each field is a ``--flag``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for field in dataclasses.fields(Args):
        flag = "--" + field.name.replace("_", "-")
        if isinstance(field.default, bool):
            parser.add_argument(flag, action="store_true")
        else:
            parser.add_argument(flag, type=type(field.default), default=field.default)
    return Args(**vars(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
