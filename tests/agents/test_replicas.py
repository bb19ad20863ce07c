"""Several replicas per model: spec parsing, least-loaded routing, health and failover."""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from swirl_agents.judges import EndpointJudge, make_judge
from swirl_agents.judges.base import ProcessQuery
from swirl_agents.judges.factory import judge_backend
from swirl_agents.policies import Observation, OraclePolicy, make_policy
from swirl_agents.policies.openai_compat import OpenAIPolicy
from swirl_agents.replicas import ReplicaPool, parse_base_urls
from swirl_agents.stages import generate, make_env
from swirl_agents.stand_in_server import StandInServer, oracle_responder
from swirl_agents.store import load_trajectories

A, B, C = (f"http://127.0.0.1:{port}/v1" for port in (9, 10, 11))
FAST = {"timeout": 2.0, "max_retries": 4, "backoff": 0.01, "max_backoff": 0.05}


def free_url() -> str:
    """A loopback URL nothing listens on (the port of a server that is gone)."""
    with StandInServer(lambda body: "") as server:
        return server.base_url


def observation(text: str = "Question: q") -> Observation:
    return Observation(text=text, messages=[{"role": "user", "content": text}])


# --- specs ---------------------------------------------------------------------------------


def test_base_urls_parse_from_a_comma_separated_spec_or_a_list():
    assert parse_base_urls(f"{A}/, {B}") == [A, B]
    assert parse_base_urls([A, B + "/"]) == [A, B]
    assert parse_base_urls(A) == [A]
    for bad in ("", f"{A},", "127.0.0.1:8000/v1", f"{A},{A}/", []):
        with pytest.raises(ValueError):
            parse_base_urls(bad)


def test_policy_and_judge_specs_take_several_urls(math_env):
    policy = make_policy(f"openai:{A},{B}", openai={"model": "m"})
    with policy:
        assert policy.base_urls == [A, B]
        assert policy.settings()["url"] == [f"{A}/chat/completions", f"{B}/chat/completions"]
    with make_policy(f"openai:{A}", openai={"model": "m"}) as single:
        assert single.settings()["url"] == f"{A}/chat/completions"  # as stored before replicas
    with make_judge(f"openai:{A},{B}", math_env, openai={"model": "j"}) as judge:
        assert judge.name == f"openai:{A},{B}#j"
        assert judge._client.base_urls == [A, B]
    assert judge_backend(f"openai:{A},{B}") == ("openai", f"{A},{B}")
    with pytest.raises(ValueError, match="twice"):
        judge_backend(f"openai:{A},{A}")
    with pytest.raises(ValueError, match="http"):
        make_policy(f"openai:{A},localhost:8000", openai={"model": "m"})


@pytest.fixture
def math_env():
    return make_env("swirl/SynthMath-v0", num_tasks=4, seed=0)


# --- the pool's bookkeeping ----------------------------------------------------------------


def test_pool_picks_the_least_loaded_healthy_replica_and_an_untried_one_for_a_retry():
    pool = ReplicaPool([A, B, C], probe=lambda url: True)
    first, second, third = (pool.acquire() for _ in range(3))
    assert [first.url, second.url, third.url] == [A, B, C]  # equal load: they take turns
    pool.release(second)
    assert pool.acquire().url == B  # the only one with nothing in flight
    pool.release(first)
    assert pool.acquire(tried=[first]).url == C  # a retry avoids the replica it failed on
    assert pool.has_untried([first, second]) and not pool.has_untried(pool.replicas)


def test_pool_ejects_on_refusal_or_repeated_failures_and_a_probe_brings_a_replica_back():
    alive = {A: False, B: True}
    pool = ReplicaPool([A, B], probe=lambda url: alive[url], max_failures=2, cooldown=0.05)
    a, b = pool.replicas
    pool.release(pool.acquire(), refused=True)  # A refuses: out at once
    assert not a.healthy and a.ejections == 1
    pool.release(pool.acquire(), failed=True)  # B fails once: still in
    assert b.healthy
    assert {pool.acquire().url for _ in range(3)} == {B}  # nothing goes to A while B is up
    time.sleep(0.06)
    pool.acquire()  # A's cooldown is over: a probe runs, and A does not answer
    deadline = time.monotonic() + 2
    while a._probing and time.monotonic() < deadline:
        time.sleep(0.005)
    assert not a.healthy and a.returns == 0
    alive[A] = True
    time.sleep(0.06)
    pool.acquire()
    while not a.healthy and time.monotonic() < deadline:
        time.sleep(0.005)
    assert a.healthy and a.returns == 1
    assert pool.busy_seconds > 0


def test_pool_with_every_replica_out_still_sends_to_the_one_out_longest():
    pool = ReplicaPool([A, B], probe=lambda url: False, max_failures=1, cooldown=60)
    pool.release(pool.acquire(), refused=True)
    pool.release(pool.acquire(), refused=True)
    replica = pool.acquire()
    assert replica.url == A
    pool.release(replica)  # an answer may be to a request sent before A went down
    assert not replica.healthy and replica.returns == 0  # only a probe brings it back


# --- over HTTP -----------------------------------------------------------------------------


def test_requests_spread_over_replicas_within_each_ones_concurrency():
    servers = [StandInServer(lambda body: "<answer>1</answer>", latency_per_token=0.01).start()]
    servers.append(StandInServer(lambda body: "<answer>1</answer>", latency_per_token=0.01).start())
    try:
        urls = [server.base_url for server in servers]
        with OpenAIPolicy(urls, "m", concurrency=2, **FAST) as policy:
            assert policy.act([observation()] * 8) == ["<answer>1</answer>"] * 8
            assert policy.replicas.busy_seconds > 0
    finally:
        for server in servers:
            server.stop()
    assert [len(server.requests) for server in servers] == [4, 4]
    assert all(server.max_in_flight == 2 for server in servers)


def test_a_replica_down_at_start_is_taken_out_after_one_refusal():
    dead = free_url()
    with StandInServer(lambda body: "<answer>1</answer>") as live:
        with OpenAIPolicy([dead, live.base_url], "m", concurrency=1, **FAST) as policy:
            assert policy.act([observation()] * 6) == ["<answer>1</answer>"] * 6
            down, up = policy.replicas.snapshot()
    assert not down["healthy"] and down["ejections"] == 1
    assert down["requests"] == down["failures"] <= 2  # at most one per thread before the news
    assert up["requests"] == len(live.requests) == 6


def test_a_request_fails_over_within_one_retry_budget_and_names_every_replica_it_tried():
    with (
        StandInServer(lambda body: "x", faults=["500"] * 10) as first,
        StandInServer(lambda body: "x", faults=["503"] * 10) as second,
    ):
        urls = [first.base_url, second.base_url]
        with OpenAIPolicy(urls, "m", concurrency=1, **{**FAST, "max_retries": 2}) as policy:
            with pytest.raises(RuntimeError, match=r"failed 3 attempts; last failure: HTTP 5"):
                policy.act([observation()])
        assert len(first.requests) + len(second.requests) == 3
        assert len(first.requests) >= 1 and len(second.requests) >= 1


def test_endpoint_judge_over_several_replicas_survives_one_that_is_down():
    def verdict(body):
        return "GOOD" if "<answer>4</answer>" in body["messages"][0]["content"] else "BAD"

    queries = [
        ProcessQuery("t", k, "Question: What is 2+2?\n", f"<answer>{k}</answer>") for k in range(8)
    ]
    with StandInServer(verdict) as first, StandInServer(verdict) as second:
        urls = [free_url(), first.base_url, second.base_url]
        with EndpointJudge(urls, "judge", concurrency=2, max_retries=3) as judge:
            results = judge.judge_process(queries)
    assert [r.good for r in results] == [k == 4 for k in range(8)]
    assert first.requests and second.requests
    assert len(first.requests) + len(second.requests) == len(queries)


def test_generation_survives_a_replica_killed_and_one_restarted_mid_run(tmp_path):
    """Three replicas; A and B are killed mid-run (in-flight requests aborted), B comes back on
    its port. The file must hold the episodes of a clean run (the oracle's, which the servers
    play), each once."""
    env = make_env("swirl/SynthMath-v0", num_tasks=40, seed=0)
    respond = oracle_responder(env.unwrapped.tasks)

    def start(port: int = 0) -> StandInServer:
        return StandInServer(respond, latency_per_token=0.002, slots=4, port=port).start()

    def run(servers: list[StandInServer], out: str) -> OpenAIPolicy:
        urls = [server.base_url for server in servers]
        policy = OpenAIPolicy(urls, "m", concurrency=4, cooldown=0.05, **FAST)
        with policy:
            generate(env, policy, tmp_path / out, batch_size=12, fsync=False)
        return policy

    generate(env, OraclePolicy(), tmp_path / "clean.jsonl", fsync=False)
    a, b, c = servers = [start() for _ in range(3)]
    restarted: list[StandInServer] = []

    def chaos() -> None:
        deadline = time.monotonic() + 20
        while sum(s.served for s in servers) < 40 and time.monotonic() < deadline:
            time.sleep(0.002)
        a.kill()
        b.kill()
        served = c.served
        while c.served < served + 40 and time.monotonic() < deadline:
            time.sleep(0.002)
        restarted.append(start(b.port))

    watcher = threading.Thread(target=chaos, daemon=True)
    watcher.start()
    policy = run(servers, "failover.jsonl")
    watcher.join(timeout=20)
    c.stop()
    for server in restarted:
        server.stop()

    def actions(path: str) -> dict[tuple[str, int], list[str]]:
        return {t.key: [s.action for s in t.steps] for t in load_trajectories(tmp_path / path)}

    keys = Counter(t.key for t in load_trajectories(tmp_path / "failover.jsonl"))
    assert max(keys.values()) == 1  # no episode twice
    assert actions("failover.jsonl") == actions("clean.jsonl") and len(keys) == 40
    replica_a, replica_b, _ = policy.replicas.snapshot()
    assert replica_a["ejections"] >= 1 and replica_b["ejections"] >= 1
    assert replica_b["returns"] >= 1 and restarted[0].served > 0  # B served again once back


def test_a_run_resumes_and_its_shards_merge_on_other_replicas_of_the_same_model(tmp_path):
    """Where a served model runs is not what it is: a stopped run goes on, and shards that ran
    against other replica sets merge; another model or other sampling is still refused."""
    from swirl_agents.stages import Shard, StageError, merge_shards

    env = make_env("swirl/SynthMath-v0", num_tasks=12, seed=0)
    respond = oracle_responder(env.unwrapped.tasks)
    with StandInServer(respond) as first, StandInServer(respond) as second:

        def policy(*urls: str, model: str = "m") -> OpenAIPolicy:
            return OpenAIPolicy(list(urls), model, **FAST)

        out = tmp_path / "run.jsonl"
        with policy(first.base_url) as one:
            generate(env, one, out, num_tasks=6, fsync=False)
        with policy(first.base_url, second.base_url) as two:
            assert generate(env, two, out, fsync=False)["episodes_run_now"] == 6
        with policy(second.base_url, model="other") as other, pytest.raises(StageError):
            generate(env, other, out, fsync=False)
        shards = [tmp_path / f"shard-{index}.jsonl" for index in range(2)]
        for index, (path, url) in enumerate(zip(shards, (first, second), strict=True)):
            with policy(url.base_url) as own:
                generate(env, own, path, shard=Shard(index, 2), fsync=False)
    merge_shards(shards, tmp_path / "merged.jsonl")
    assert sorted(t.key for t in load_trajectories(tmp_path / "merged.jsonl")) == sorted(
        t.key for t in load_trajectories(out)
    )


@pytest.mark.slow
def test_replicas_benchmark_kills_processes_and_loses_and_repeats_nothing(tmp_path, monkeypatch):
    path = Path(__file__).parents[2] / "benchmarks" / "replicas.py"
    spec = importlib.util.spec_from_file_location("benchmark_replicas", path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    out = tmp_path / "replicas.json"
    argv = ["--episodes", "48", "--replicas", "1,2", "--latency-per-token", "0.01",
            "--batch-size", "32", "--out", str(out)]  # fmt: skip
    results = module.main(argv)
    assert json.loads(out.read_text()) == json.loads(json.dumps(results))
    assert [run["episodes"] for run in results["runs"]] == [48, 48]
    assert results["runs"][1]["speedup"] > 1.3
    failover = results["failover"]
    assert failover["complete"] and failover["duplicates"] == 0
    assert failover["same_keys_as_clean"] and failover["same_actions_as_clean"]
    assert failover["per_replica"][0]["ejections"] == 1


def test_stand_in_server_takes_its_latency_per_token_in_a_limited_number_of_slots():
    text = "x" * 40  # 10 tokens at 4 characters a token
    with StandInServer(lambda body: text, latency_per_token=0.01, slots=1) as server:
        with OpenAIPolicy(server.base_url, "m", concurrency=2, **FAST) as policy:
            started = time.monotonic()
            assert policy.act([observation()] * 2) == [text] * 2
            assert time.monotonic() - started >= 0.2  # 2 x 10 tokens x 10 ms, one at a time
            assert policy.stats.completion_tokens == 20
