"""The HTTP env server and its client, against a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import importlib.util
import json
import socket
import sys
import threading
import time
from contextlib import nullcontext
from pathlib import Path

import gymnasium as gym
import httpx
import numpy as np
import pytest

from swirl_envs import Task
from swirl_envs.client import RemoteEnv, RemoteEnvError, space_from_json, space_to_json
from swirl_envs.env import SwirlEnv
from swirl_envs.server import BackgroundServer, ServerConfig, create_app, to_jsonable
from swirl_envs.spaces import TranscriptSpace
from swirl_envs.tools.base import Tool, ToolResult

ENV_ID = "swirl_test/Gate-v0"
GATE_ENTERED = threading.Event()
GATE_OPEN = threading.Event()
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


class GateTool(Tool):
    """Blocks until the test opens the gate: a step that is slow for as long as a test needs."""

    name = "wait"
    tag = "wait"
    argument = "reason"
    description = "Wait for the gate to open."

    def __call__(self, argument: str, task: Task) -> ToolResult:
        GATE_ENTERED.set()
        return ToolResult("opened" if GATE_OPEN.wait(timeout=10) else "timed out")


def make_gate_env(max_steps: int = 3) -> SwirlEnv:
    tasks = [
        Task(
            id=f"t{i}",
            question=f"Say {word}.",
            answers=(word,),
            gold_path=(f"<answer>{word}</answer>",),
        )
        for i, word in enumerate(["alpha", "beta", "gamma", "delta"])
    ]
    return SwirlEnv(
        tasks, [GateTool()], system_prompt="Be brief ({max_steps} steps).", max_steps=max_steps
    )


if ENV_ID not in gym.registry:
    gym.register(ENV_ID, entry_point=make_gate_env)


def config(**overrides) -> ServerConfig:
    settings = dict(env_ids=(ENV_ID,), allowed_kwargs=frozenset({"max_steps"}), max_body_bytes=4096)
    return ServerConfig(**{**settings, **overrides})


@pytest.fixture(scope="module")
def server():
    with BackgroundServer(create_app(config(max_sessions=16))) as running:
        yield running


@pytest.fixture
def client(server):
    """An HTTP client whose sessions (opened with ``open_session``) close after the test."""
    with httpx.Client(base_url=server.url, timeout=10) as http:
        http.opened = []
        yield http
        for session in http.opened:
            http.delete(f"/sessions/{session}")


def open_session(client: httpx.Client, **body) -> str:
    response = client.post("/sessions", json=body)
    assert response.status_code == 201, response.text
    session = response.json()["session_id"]
    if hasattr(client, "opened"):
        client.opened.append(session)
    return session


def test_a_session_plays_an_episode_and_describes_its_env(client):
    response = client.post("/sessions", json={})
    assert response.status_code == 201
    description = response.json()
    assert description["env_id"] == ENV_ID
    assert description["observation_space"]["type"] == "text"
    assert [schema["function"]["name"] for schema in description["tool_schemas"]] == [
        "wait",
        "answer",
    ]
    session = description["session_id"]
    reset = client.post(
        f"/sessions/{session}/reset", json={"seed": 0, "options": {"index": 1}}
    ).json()
    assert reset["observation"].endswith("Question: Say beta.\n") and reset["info"]["index"] == 1
    step = client.post(f"/sessions/{session}/step", json={"action": "<answer>beta</answer>"}).json()
    assert step["reward"] == 1.0 and step["terminated"] and not step["truncated"]
    assert step["info"]["em"] == 1.0
    assert client.delete(f"/sessions/{session}").json() == {"closed": True}
    assert client.post(f"/sessions/{session}/reset", json={}).status_code == 404


def test_sessions_are_isolated_and_their_ids_unguessable(client):
    first, second = open_session(client), open_session(client)
    assert first != second and len(first) >= 40
    client.post(f"/sessions/{first}/reset", json={"options": {"index": 0}})
    client.post(f"/sessions/{second}/reset", json={"options": {"index": 2}})
    client.post(f"/sessions/{first}/step", json={"action": "thinking"})
    one = client.post(f"/sessions/{first}/step", json={"action": "<answer>alpha</answer>"}).json()
    two = client.post(f"/sessions/{second}/step", json={"action": "<answer>gamma</answer>"}).json()
    assert one["info"]["step"] == 2 and two["info"]["step"] == 1
    assert "gamma" not in one["observation"] and "alpha" not in two["observation"]
    assert client.post(f"/sessions/{first[:-1]}x/reset", json={}).status_code == 404


def test_allowed_env_kwargs_reach_the_env_and_others_are_refused(client):
    session = open_session(client, kwargs={"max_steps": 1})
    client.post(f"/sessions/{session}/reset", json={})
    step = client.post(f"/sessions/{session}/step", json={"action": "no call"}).json()
    assert step["truncated"]
    refused = client.post("/sessions", json={"kwargs": {"render_mode": "human"}})
    assert refused.status_code == 400 and "render_mode" in refused.json()["detail"]
    bad_value = client.post("/sessions", json={"kwargs": {"max_steps": 0}})
    assert bad_value.status_code == 400 and "max_steps" in bad_value.json()["detail"]
    unknown = client.post("/sessions", json={"env_id": "swirl/Nope-v0"})
    assert unknown.status_code == 400 and ENV_ID in unknown.json()["detail"]


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("step", {"action": 5}, 422, "valid string"),
        ("step", {"action": ["<answer>x</answer>"]}, 422, "valid string"),
        ("step", {}, 422, "action"),
        ("step", {"action": "x", "extra": 1}, 422, "extra"),
        ("reset", {"seed": "7"}, 422, "seed"),
        ("reset", {"seed": -1}, 422, "seed"),
        ("reset", {"seed": 2**70}, 422, "seed"),
        ("reset", {"options": {"index": 99}}, 400, "index"),
        ("reset", {"options": "index"}, 422, "options"),
    ],
)
def test_wrong_types_and_values_are_refused_with_a_message(client, path, body, status, message):
    session = open_session(client)
    client.post(f"/sessions/{session}/reset", json={})
    response = client.post(f"/sessions/{session}/{path}", json=body)
    assert response.status_code == status
    assert message in response.json()["detail"]


def test_malformed_json_is_a_4xx_that_says_so(client):
    session = open_session(client)
    nested = b'{"action": ' + b"[" * 1500 + b"]" * 1500 + b"}"
    for raw in (b'{"action": "<answer>', b"\xff\xfe", b"[" * 2000, nested, b"null"):
        response = client.post(
            f"/sessions/{session}/step", content=raw, headers={"content-type": "application/json"}
        )
        assert response.status_code in (400, 422), raw
        assert response.json()["detail"]


def assert_json_refusal(response: httpx.Response, status: int) -> str:
    """The refusal's ``detail``, after checking that it is short JSON with that status."""
    assert response.status_code == status, response.text[:200]
    assert response.headers["content-type"] == "application/json"
    assert len(response.content) < 1000, response.text[:200]
    return response.json()["detail"]


def test_oversized_bodies_are_refused_in_json_whether_declared_or_streamed(client):
    session = open_session(client)
    client.post(f"/sessions/{session}/reset", json={})
    big = {"action": "x" * 10_000}
    declared = client.post(f"/sessions/{session}/step", json=big)  # httpx sends Content-Length
    assert "4096 bytes" in assert_json_refusal(declared, 413)

    def chunks():  # no Content-Length: the server must count the bytes it reads
        for _ in range(10):
            yield b" " * 1000

    streamed = client.post(
        f"/sessions/{session}/step", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "4096 bytes" in assert_json_refusal(streamed, 413)
    ok = client.post(f"/sessions/{session}/step", json={"action": "<answer>alpha</answer>"})
    assert ok.status_code == 200  # the session survived both


def test_an_oversized_content_length_is_refused_in_json_before_the_body_is_read(server):
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    request = (
        b"POST /sessions HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000000000\r\n\r\n{}"
    )
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(request)  # 2 of the 10^9 bytes announced: a server that waits hangs
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
            chunk = connection.recv(4096)
            if not chunk:
                break
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 ")
    assert b"content-type: application/json" in head.lower()
    assert "limit of 4096 bytes" in json.loads(body)["detail"]


def test_refusals_quote_at_most_a_clipped_piece_of_the_client_input():
    with BackgroundServer(create_app(config(max_body_bytes=1 << 20))) as running:
        with httpx.Client(base_url=running.url, timeout=10) as http:
            huge_id = "swirl/" + "x" * 60_000
            detail = assert_json_refusal(http.post("/sessions", json={"env_id": huge_id}), 400)
            assert detail.startswith("Unknown env 'swirl/xxx") and "...;" in detail
            assert ENV_ID in detail
            names = {f"name{i}" + "y" * 3000: 1 for i in range(100)}
            detail = assert_json_refusal(http.post("/sessions", json={"kwargs": names}), 400)
            assert "name0yyy" in detail and "and 95 more" in detail
            session = open_session(http)
            extra = {f"extra{i}" + "k" * 3000: 1 for i in range(50)}
            step = http.post(f"/sessions/{session}/step", json={"action": "x", **extra})
            detail = assert_json_refusal(step, 422)
            assert "extra0kkk" in detail and "and 45 more" in detail
            http.delete(f"/sessions/{session}")


def test_step_before_reset_and_after_the_end_is_a_409(client):
    session = open_session(client)
    assert client.post(f"/sessions/{session}/step", json={"action": "x"}).status_code == 409
    client.post(f"/sessions/{session}/reset", json={"options": {"index": 0}})
    client.post(f"/sessions/{session}/step", json={"action": "<answer>alpha</answer>"})
    after = client.post(f"/sessions/{session}/step", json={"action": "x"})
    assert after.status_code == 409 and "reset" in after.json()["detail"]


def test_a_refused_reset_leaves_the_session_needing_a_reset(client):
    session = open_session(client)
    client.post(f"/sessions/{session}/reset", json={})
    refused = client.post(f"/sessions/{session}/reset", json={"options": {"index": -1}})
    assert refused.status_code == 400
    assert client.post(f"/sessions/{session}/step", json={"action": "x"}).status_code == 409


def test_a_reused_env_shows_nothing_of_the_previous_session(server):
    with httpx.Client(base_url=server.url, timeout=10) as http:
        before = http.get("/health").json()["sessions"]
        first = open_session(http)
        http.post(f"/sessions/{first}/reset", json={})
        http.post(f"/sessions/{first}/step", json={"action": "a secret plan"})
        http.delete(f"/sessions/{first}")
        second = open_session(http)  # served from the pool of closed sessions' envs
        assert http.post(f"/sessions/{second}/step", json={"action": "x"}).status_code == 409
        reset = http.post(f"/sessions/{second}/reset", json={}).json()
        assert "secret" not in reset["observation"] and len(reset["info"]["messages"]) == 2
        http.delete(f"/sessions/{second}")
        assert http.get("/health").json()["sessions"] == before


def test_a_slow_step_blocks_neither_the_server_nor_other_sessions_and_a_concurrent_step_is_a_409(
    server, client
):
    slow, other = open_session(client), open_session(client)
    for session in (slow, other):
        client.post(f"/sessions/{session}/reset", json={"options": {"index": 0}})
    GATE_ENTERED.clear()
    GATE_OPEN.clear()
    results = {}

    def slow_step():
        with httpx.Client(base_url=server.url, timeout=20) as http:
            results["slow"] = http.post(f"/sessions/{slow}/step", json={"action": "<wait>x</wait>"})

    thread = threading.Thread(target=slow_step)
    thread.start()
    try:
        assert GATE_ENTERED.wait(timeout=10)
        concurrent = client.post(
            f"/sessions/{slow}/step", json={"action": "<answer>alpha</answer>"}
        )
        assert concurrent.status_code == 409 and "in progress" in concurrent.json()["detail"]
        assert client.delete(f"/sessions/{slow}").status_code == 409
        assert client.get("/health").status_code == 200
        fast = client.post(f"/sessions/{other}/step", json={"action": "<answer>alpha</answer>"})
        assert fast.status_code == 200 and fast.json()["reward"] == 1.0
    finally:
        GATE_OPEN.set()
        thread.join(timeout=20)
    assert results["slow"].status_code == 200
    assert results["slow"].json()["info"]["feedback"].strip() == "x -> opened"


def test_the_server_stays_up_after_hostile_input(client):
    hostile = [
        ("POST", "/sessions", b"{"),
        ("POST", "/sessions", b'{"kwargs": {"max_steps": {"nested": [1]}}}'),
        ("POST", "/sessions/%00/step", b'{"action": "x"}'),
        ("GET", "/sessions", b""),
        ("PUT", "/health", b""),
        ("POST", "/sessions/" + "a" * 3000 + "/reset", b"{}"),
    ]
    for method, path, body in hostile:
        response = client.request(
            method, path, content=body, headers={"content-type": "application/json"}
        )
        assert 400 <= response.status_code < 500, (method, path, response.status_code)
    assert client.get("/health").json()["status"] == "ok"
    session = open_session(client)
    assert client.post(f"/sessions/{session}/reset", json={}).status_code == 200


def test_idle_sessions_expire():
    with BackgroundServer(create_app(config(idle_timeout=0.2))) as running:
        with httpx.Client(base_url=running.url, timeout=10) as http:
            session = open_session(http)
            deadline = time.monotonic() + 10
            while http.post(f"/sessions/{session}/reset", json={}).status_code != 404:
                assert time.monotonic() < deadline, "the idle session never expired"
                time.sleep(0.3)
            assert http.get("/health").json()["sessions"] == 0


def test_a_full_server_refuses_new_sessions_until_one_closes():
    with BackgroundServer(create_app(config(max_sessions=2))) as running:
        with httpx.Client(base_url=running.url, timeout=10) as http:
            first, _ = open_session(http), open_session(http)
            full = http.post("/sessions", json={})
            assert full.status_code == 503 and "maximum of 2" in full.json()["detail"]
            http.delete(f"/sessions/{first}")
            assert http.post("/sessions", json={}).status_code == 201


def test_remote_env_matches_the_local_env(server):
    local = make_gate_env()
    remote = RemoteEnv(server.url, env_id=ENV_ID)
    try:
        assert remote.observation_space == local.observation_space
        assert remote.tool_schemas == local.tool_schemas
        for seed in range(3):
            assert remote.reset(seed=seed)[0] == local.reset(seed=seed)[0]
            for action in ("hmm", "<answer>beta</answer>"):
                remote_step, local_step = remote.step(action), local.step(action)
                assert remote_step[:4] == local_step[:4]
                if remote_step[2]:
                    break
    finally:
        remote.close()
    remote.close()  # idempotent


def test_remote_env_errors_name_the_problem(server):
    with pytest.raises(RemoteEnvError, match="not allowed") as refused:
        RemoteEnv(server.url, env_kwargs={"render_mode": "human"})
    assert refused.value.status_code == 400
    with pytest.raises(RemoteEnvError, match="failed"):
        RemoteEnv("http://127.0.0.1:9", timeout=2)  # nothing listens on the discard port
    env = RemoteEnv(server.url)
    with pytest.raises(RemoteEnvError, match="409"):
        env.step("x")
    env.close()


def test_vector_envs_of_remote_envs(server):
    sync = gym.make_vec("swirl/Remote-v0", num_envs=3, vectorization_mode="sync", url=server.url)
    observations, _ = sync.reset(seed=0)
    assert len(observations) == 3 and all("Question:" in obs for obs in observations)
    _, rewards, terminated, _, _ = sync.step(["<answer>alpha</answer>"] * 3)
    assert terminated.all() and set(rewards) <= {0.0, 1.0}
    sync.close()
    url = server.url
    async_envs = gym.vector.AsyncVectorEnv([lambda: RemoteEnv(url)] * 2)
    observations, _ = async_envs.reset(seed=[1, 2])
    assert all(obs.startswith("Be brief") for obs in observations)
    async_envs.close()
    assert httpx.get(f"{url}/health").json()["sessions"] <= 16


def test_spaces_round_trip_through_json():
    for space in (
        TranscriptSpace(50, min_length=1),
        gym.spaces.Discrete(4, start=1),
        gym.spaces.Box(-1.0, 1.0, shape=(2, 3), dtype=np.float32),
        gym.spaces.Box(np.array([0.0, -np.inf]), np.array([np.inf, 1.0]), dtype=np.float64),
        gym.spaces.MultiBinary(5),
    ):
        assert space_from_json(space_to_json(space)) == space
    with pytest.raises(ValueError, match="cannot rebuild"):
        space_from_json({"type": "Graph"})


def test_info_values_become_plain_json():
    info = {"a": np.float32(0.5), "b": np.arange(3), "c": (1, {2}), "d": float("nan"), 3: object}
    assert to_jsonable(info) == {
        "a": 0.5,
        "b": [0, 1, 2],
        "c": [1, [2]],
        "d": None,
        "3": str(object),
    }


def test_server_config_refuses_unknown_envs_and_bad_limits():
    with pytest.raises(ValueError, match="Did you mean"):
        ServerConfig(env_ids=("swirl/SynthMat-v0",))
    with pytest.raises(ValueError, match="positive"):
        config(max_sessions=0)


def test_serve_command_rejects_bad_arguments_before_starting(capsys, tmp_path):
    from swirl_agents.cli import main

    missing = json.dumps({"data_path": str(tmp_path / "nowhere.jsonl")})
    for argv, message in (
        (["serve", "--env", ENV_ID, "--env-kwargs", "{oops"], "not valid JSON"),
        (["serve", "--env", ENV_ID, "--env-kwargs", "[1]"], "JSON object"),
        (["serve", "--env", "swirl/Nope-v0"], "Cannot serve"),
        (["serve", "--env", "swirl/GSM8K-v0", "--env-kwargs", missing], "nowhere.jsonl"),
    ):
        with pytest.raises(SystemExit) if "JSON" in message else nullcontext():
            code = main([*argv, "--port", "9"])  # nothing listens: it never starts
            assert code == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err


def test_a_session_on_an_env_whose_data_is_missing_is_a_400_naming_the_file(tmp_path):
    missing = str(tmp_path / "nowhere.jsonl")
    config = ServerConfig(env_ids=("swirl/GSM8K-v0",), env_kwargs={"data_path": missing})
    with BackgroundServer(create_app(config)) as server:
        reply = httpx.post(f"{server.url}/sessions", json={})
    assert reply.status_code == 400 and "nowhere.jsonl" in reply.json()["detail"]


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_function_calling_example_solves_episodes_against_a_scripted_endpoint():
    example = load_example("function_calling")
    results = example.main(["--self-test", "--env-id", "swirl/SynthMath-v0", "--episodes", "3"])
    assert results["episodes"] == 3 and results["success"] == 1.0
    assert results["tool_calls"] > 3  # calculator calls, not only answers
