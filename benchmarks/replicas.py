"""Generation throughput over 1, 2 and 4 model replicas, and a run that survives failures.

Each replica is a stand-in for vLLM (``python -m swirl_agents.stand_in_server``) in its
own process on a loopback port: it plays the env's oracle at ``--latency-per-token``
seconds per completion token, decoding at most ``--slots`` requests at once, so one
replica has a fixed capacity as a model server does. The client is the stage layer's
``generate`` with an ``openai:URL1,URL2,...`` policy, ``--slots`` requests in flight per
replica. For each replica count it measures

- episodes per second, and the speedup over one replica;
- client-side overhead: wall time with no request in flight (env steps, the store,
  the client's own work between requests), as a share of wall time; the policy's
  ``ReplicaPool`` times the spans with at least one request in flight.

Then a failover run on the largest count: replica 0 is killed with SIGKILL at
``--kill-at`` of the clean run's wall time and stays down; replica 1 is killed at the
same moment and restarted on its port at ``--restart-at``. Its file must hold exactly
the clean run's episodes, each once, with the same actions.

    python benchmarks/replicas.py                      # about a minute on 2 cores
    python benchmarks/replicas.py --replicas 1,2,4,8 --episodes 256
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from swirl_agents.flags import add_flags, from_flags
from swirl_agents.policies import make_policy
from swirl_agents.stages import generate, make_env
from swirl_agents.store import load_trajectories


@dataclass
class ReplicaArgs:
    env_id: str = "swirl/SynthMath-v0"
    """the env to generate on (the stand-in servers play its oracle)"""
    env_kwargs: str = "{}"
    """JSON of the env's arguments (client and servers)"""
    episodes: int = 256
    """episodes per run (the env's first tasks, one sample each)"""
    replicas: str = "1,2,4"
    """comma-separated replica counts, one run each"""
    latency_per_token: float = 0.02
    """seconds a replica takes per completion token"""
    slots: int = 8
    """requests a replica decodes at once; also the client's concurrency per replica"""
    batch_size: int = 128
    """live episodes of the rollout (one policy call per round; several waves of requests per
    round even on the most replicas, so one slow reply holds up less)"""
    kill_at: float = 0.3
    """failover run: when replicas 0 and 1 are killed, as a share of the clean run's time"""
    restart_at: float = 0.5
    """failover run: when replica 1 is restarted, as a share of the clean run's time"""
    cooldown: float = 0.5
    """seconds before an ejected replica is probed again"""
    out: str = "results/replicas.json"
    """where the JSON results go"""


class Replica:
    """One stand-in server process on a fixed loopback port (so it can come back there)."""

    def __init__(self, args: ReplicaArgs):
        self.args = args
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        """Start the process; ``wait_ready`` waits for it to listen."""
        command = [
            sys.executable, "-m", "swirl_agents.stand_in_server", "--port", str(self.port),
            "--env", self.args.env_id, "--env-kwargs", self.args.env_kwargs,
            "--latency-per-token", str(self.args.latency_per_token),
            "--slots", str(self.args.slots),
        ]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)

    def wait_ready(self) -> None:
        """Block until the server prints that it listens."""
        assert self.process is not None and self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("ready"):
            raise RuntimeError(f"the stand-in server on port {self.port} did not start: {line!r}")

    def kill(self) -> None:
        """SIGKILL: in-flight requests die with it, as when a model server crashes."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()


def start_replicas(args: ReplicaArgs, count: int) -> list[Replica]:
    """``count`` stand-in servers, listening."""
    replicas = [Replica(args) for _ in range(count)]
    for replica in replicas:
        replica.start()
    for replica in replicas:
        replica.wait_ready()
    return replicas


def run_generation(
    args: ReplicaArgs, replicas: list[Replica], out: Path, chaos: threading.Thread | None = None
) -> dict[str, Any]:
    """One generation over ``replicas`` into ``out``: its throughput, overhead and counters."""
    env = make_env(args.env_id, json.loads(args.env_kwargs))
    spec = "openai:" + ",".join(replica.url for replica in replicas)
    options = {"model": "stand-in", "concurrency": args.slots, "cooldown": args.cooldown}
    with make_policy(spec, openai=options) as policy:
        started = time.perf_counter()
        if chaos is not None:
            chaos.start()
        summary = generate(env, policy, out, batch_size=args.batch_size, num_tasks=args.episodes)
        seconds = time.perf_counter() - started
        waiting = policy.replicas.busy_seconds
        counters = policy.replicas.snapshot()
    return {
        "replicas": len(replicas),
        "episodes": summary["episodes"],
        "seconds": seconds,
        "episodes_per_second": summary["episodes"] / seconds,
        "http_wait_seconds": waiting,
        "client_overhead": (seconds - waiting) / seconds,
        "per_replica": counters,
    }


def throughput_run(args: ReplicaArgs, count: int, folder: Path) -> dict[str, Any]:
    """A clean run over ``count`` replicas."""
    replicas = start_replicas(args, count)
    try:
        return run_generation(args, replicas, folder / f"clean-{count}.jsonl")
    finally:
        for replica in replicas:
            replica.kill()


def failover_run(args: ReplicaArgs, count: int, clean_seconds: float, folder: Path) -> dict:
    """Replica 0 killed for good and replica 1 killed and restarted, mid-run."""
    replicas = start_replicas(args, count)
    events: list[dict[str, Any]] = []
    started = time.perf_counter()

    def chaos() -> None:
        time.sleep(args.kill_at * clean_seconds)
        for replica in replicas[:2]:
            replica.kill()
        events.append({"at": time.perf_counter() - started, "event": "killed replicas 0 and 1"})
        time.sleep((args.restart_at - args.kill_at) * clean_seconds)
        replicas[1].start()
        replicas[1].wait_ready()
        events.append({"at": time.perf_counter() - started, "event": "restarted replica 1"})

    out = folder / f"failover-{count}.jsonl"
    chaos_thread = threading.Thread(target=chaos, daemon=True)
    try:
        result = run_generation(args, replicas, out, chaos_thread)
        chaos_thread.join()
    finally:
        for replica in replicas:
            replica.kill()
    clean = actions(folder / f"clean-{count}.jsonl")
    keys = Counter(t.key for t in load_trajectories(out))
    result.update(
        events=events,
        complete=len(keys) == args.episodes,
        duplicates=sum(n - 1 for n in keys.values()),
        same_keys_as_clean=set(keys) == set(clean),
        same_actions_as_clean=actions(out) == clean,
    )
    return result


def actions(path: Path) -> dict[tuple[str, int], list[str]]:
    """Each stored episode's actions by ``(task_id, sample)``."""
    return {t.key: [step.action for step in t.steps] for t in load_trajectories(path)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run every replica count and the failover run; print a table and write the JSON."""
    args = parse_args(argv)
    counts = [int(n) for n in args.replicas.split(",")]
    with tempfile.TemporaryDirectory(prefix="swirl-replicas-") as tmp:
        runs = [throughput_run(args, count, Path(tmp)) for count in counts]
        for run in runs:
            run["speedup"] = run["episodes_per_second"] / runs[0]["episodes_per_second"]
        failover = failover_run(args, counts[-1], runs[-1]["seconds"], Path(tmp))
    print(
        f"{args.env_id}: {args.episodes} episodes, {args.latency_per_token * 1000:.0f} ms/token, "
        f"{args.slots} slots per replica, batch {args.batch_size}"
    )
    print(f"{'replicas':>9s} {'episodes/s':>11s} {'speedup':>8s} {'overhead':>9s} {'seconds':>8s}")
    for run in runs:
        print(
            f"{run['replicas']:>9d} {run['episodes_per_second']:>11.2f} {run['speedup']:>7.2f}x "
            f"{run['client_overhead']:>8.1%} {run['seconds']:>8.1f}"
        )
    print(
        f"failover ({counts[-1]} replicas, 0 killed, 1 killed and restarted): "
        f"{failover['episodes']} episodes in {failover['seconds']:.1f} s, "
        f"complete={failover['complete']}, duplicates={failover['duplicates']}, "
        f"same keys as clean={failover['same_keys_as_clean']}, "
        f"same actions={failover['same_actions_as_clean']}"
    )
    for replica in failover["per_replica"]:
        print(
            f"  {replica['url']}: {replica['requests']} requests, {replica['failures']} failed, "
            f"{replica['ejections']} ejections, {replica['returns']} returns"
        )
    results = {
        "args": dataclasses.asdict(args),
        "machine": {"cpus": os.cpu_count(), "load_average": os.getloadavg()},
        "runs": runs,
        "failover": failover,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    return results


def parse_args(argv: list[str] | None) -> ReplicaArgs:
    """Read ``ReplicaArgs`` from the command line (each field is a ``--flag``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_flags(parser, ReplicaArgs)
    return from_flags(ReplicaArgs, parser.parse_args(argv))


if __name__ == "__main__":
    failover = main()["failover"]
    checks = ("complete", "same_keys_as_clean", "same_actions_as_clean")
    sys.exit(0 if all(failover[key] for key in checks) and not failover["duplicates"] else 1)
