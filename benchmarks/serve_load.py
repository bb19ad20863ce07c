"""Load-test the env server: N concurrent clients on loopback for a bounded time.

Each client opens a session, then plays episodes until the time is up: reset, a few
tool calls (JSON function calls) and an answer. Every reply is checked: the step
counter must advance by one, the transcript must extend the previous one (a reply
from another session would not), and the answer must end the episode. An episode
that started but did not end that way is lost. Clients finish the episode they are
in when time runs out, so the benchmark itself cuts none short.

    python benchmarks/serve_load.py --clients 1,16,64 --duration 10
    python benchmarks/serve_load.py --url http://127.0.0.1:8000   # an already running server

Without ``--url`` the server runs in a subprocess (so that it does not share the
client's interpreter lock) on a free loopback port.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from swirl_agents.flags import add_flags, from_flags


@dataclass
class LoadArgs:
    env_id: str = "swirl/SynthMath-v0"
    """the env to serve and play"""
    env_kwargs: str = '{"num_tasks": 200}'
    """JSON of server-side env arguments"""
    clients: str = "1,16,64"
    """comma-separated numbers of concurrent clients, one run each"""
    duration: float = 10.0
    """seconds of load per run"""
    tool_calls: int = 3
    """tool calls per episode before the answer"""
    timeout: float = 30.0
    """seconds a client waits for one reply"""
    url: str = ""
    """an already running server; empty starts one"""
    out: str = "results/serve_load.json"
    """where the JSON results go"""


COLUMNS = (
    ("clients", "clients", "d"),
    ("steps/s", "steps_per_second", ".1f"),
    ("p50 ms", "step_p50_ms", ".1f"),
    ("p99 ms", "step_p99_ms", ".1f"),
    ("episodes", "episodes_completed", "d"),
    ("lost", "episodes_lost", "d"),
    ("errors", "errors", "d"),
)
"""The printed table: (title, key in a run's results, format)."""


@dataclass
class Stats:
    """What the clients of one run observed."""

    step_latencies: list[float] = field(default_factory=list)
    reset_latencies: list[float] = field(default_factory=list)
    open_latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    episodes_started: int = 0
    episodes_completed: int = 0

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


async def timed(stats_list: list[float], request: Any) -> httpx.Response:
    started = time.perf_counter()
    response = await request
    stats_list.append(time.perf_counter() - started)
    return response


async def open_session(http: httpx.AsyncClient, stats: Stats) -> dict[str, Any] | None:
    """Open a session; its description, or None (counted as an error) when refused."""
    try:
        opened = await timed(stats.open_latencies, http.post("/sessions", json={}))
    except httpx.HTTPError as error:
        return stats.error(f"open: {type(error).__name__}")
    if opened.status_code != 201:
        return stats.error(f"open: HTTP {opened.status_code}")
    return opened.json()


async def play(
    http: httpx.AsyncClient, args: LoadArgs, session: dict[str, Any], client: int,
    deadline: float, stats: Stats,
) -> None:  # fmt: skip
    """One client: play checked episodes on its session until the deadline, then close it."""
    tool = session["tool_schemas"][0]["function"]
    argument = next(iter(tool["parameters"]["properties"]))
    episode = 0
    while time.perf_counter() < deadline:
        stats.episodes_started += 1
        try:
            completed = await play_episode(
                http, args, session["session_id"], tool["name"], argument, client, episode, stats
            )
        except httpx.HTTPError as error:
            completed = False
            stats.error(f"request: {type(error).__name__}")
        stats.episodes_completed += completed
        episode += 1
    await http.delete(f"/sessions/{session['session_id']}")


async def play_episode(
    http: httpx.AsyncClient, args: LoadArgs, session: str, tool: str, argument: str,
    client: int, episode: int, stats: Stats,
) -> bool:  # fmt: skip
    """Reset, call the tool ``args.tool_calls`` times, answer; True if every reply checked out."""
    reset = await timed(
        stats.reset_latencies,
        http.post(f"/sessions/{session}/reset", json={"seed": client * 1_000_000 + episode}),
    )
    if reset.status_code != 200:
        stats.error(f"reset: HTTP {reset.status_code}")
        return False
    transcript = reset.json()["observation"]
    for step in range(1, args.tool_calls + 2):
        if step <= args.tool_calls:
            call = {"name": tool, "arguments": {argument: f"{client} + {episode} * {step}"}}
        else:
            call = {"name": "answer", "arguments": {"answer": "42"}}
        reply = await timed(
            stats.step_latencies,
            http.post(f"/sessions/{session}/step", json={"action": json.dumps(call)}),
        )
        if reply.status_code != 200:
            stats.error(f"step: HTTP {reply.status_code}")
            return False
        body = reply.json()
        if body["info"]["step"] != step or not body["observation"].startswith(transcript):
            stats.error("step: reply from another episode")
            return False
        if body["terminated"] != (step > args.tool_calls):
            stats.error("step: episode ended at the wrong step")
            return False
        transcript = body["observation"]
    return True


async def run_level(url: str, args: LoadArgs, clients: int) -> dict[str, Any]:
    """Run ``clients`` concurrent clients for ``args.duration`` seconds and summarise."""
    stats = Stats()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=args.timeout, limits=limits) as http:
        # Sessions open before the clock starts: making envs is not stepping them.
        sessions = await asyncio.gather(*(open_session(http, stats) for _ in range(clients)))
        started = time.perf_counter()
        deadline = started + args.duration
        await asyncio.gather(
            *(play(http, args, s, c, deadline, stats) for c, s in enumerate(sessions) if s)
        )
        elapsed = time.perf_counter() - started
    steps = np.array(stats.step_latencies) * 1000
    resets = np.array(stats.reset_latencies) * 1000
    opens = np.array(stats.open_latencies) * 1000
    return {
        "clients": clients,
        "seconds": elapsed,
        "steps": int(steps.size),
        "steps_per_second": steps.size / elapsed,
        "step_p50_ms": float(np.percentile(steps, 50)) if steps.size else None,
        "step_p99_ms": float(np.percentile(steps, 99)) if steps.size else None,
        "reset_p50_ms": float(np.percentile(resets, 50)) if resets.size else None,
        "open_p50_ms": float(np.percentile(opens, 50)) if opens.size else None,
        "open_max_ms": float(opens.max()) if opens.size else None,
        "episodes_completed": stats.episodes_completed,
        "episodes_lost": stats.episodes_started - stats.episodes_completed,
        "errors": sum(stats.errors.values()),
        "error_kinds": stats.errors,
    }


def start_server(args: LoadArgs, max_sessions: int) -> tuple[subprocess.Popen, str]:
    """Start ``swirl_envs.server`` in a subprocess on a free loopback port; wait until healthy."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = (
        "import json, sys; from swirl_envs.server import ServerConfig, serve; "
        "serve(ServerConfig(env_ids=(sys.argv[1],), env_kwargs=json.loads(sys.argv[2]), "
        "max_sessions=int(sys.argv[3])), port=int(sys.argv[4]), log_level='warning')"
    )
    command = [
        sys.executable,
        "-c",
        code,
        args.env_id,
        args.env_kwargs,
        str(max_sessions),
        str(port),
    ]
    process = subprocess.Popen(command)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"The server exited with code {process.returncode}.")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.2)
    process.terminate()
    raise RuntimeError("The server did not answer /health within 120 s.")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run every level, print a table and write the JSON results."""
    args = parse_args(argv)
    levels = [int(n) for n in args.clients.split(",")]
    process, url = (None, args.url) if args.url else start_server(args, max(levels))
    try:
        runs = [asyncio.run(run_level(url, args, clients)) for clients in levels]
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)
    print(f"{args.env_id}: {args.duration:.0f} s per run, {args.tool_calls} tool calls + 1 answer")
    print(" ".join(f"{title:>9s}" for title, _, _ in COLUMNS))
    for run in runs:
        print(" ".join(f"{format(run[key] or 0, spec):>9s}" for _, key, spec in COLUMNS))
    results = {
        "args": dataclasses.asdict(args),
        "machine": {"cpus": os.cpu_count(), "load_average": os.getloadavg()},
        "runs": runs,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    return results


def parse_args(argv: list[str] | None) -> LoadArgs:
    """Read ``LoadArgs`` from the command line (each field is a ``--flag``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_flags(parser, LoadArgs)
    return from_flags(LoadArgs, parser.parse_args(argv))


if __name__ == "__main__":
    main()
