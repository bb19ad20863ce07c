"""Gymnasium's own environment checks, applied to every registered ``swirl/*`` id."""

import pickle
import subprocess
import sys
import warnings

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

import swirl_envs
from swirl_envs.transcript import first_observation, transcript_messages
from tests.envs.dataset_fixtures import dataset_env_kwargs

ENV_IDS = sorted(swirl_envs.ENV_IDS)
GENERATED = ["swirl/SynthMath-v0", "swirl/SynthHop-v0"]
REMOTE = "swirl/Remote-v0"
REGISTERED = sorted(env_id for env_id in gym.registry if env_id.startswith("swirl/"))


def make(env_id, tmp_path, **kwargs):
    return gym.make(env_id, **dataset_env_kwargs(env_id, tmp_path), **kwargs)


def rollout(env, seed, actions):
    """Reset with ``seed``, play the gold path but its answer, then ``actions``; return all."""
    obs, info = env.reset(seed=seed)
    record = [(obs, info)]
    plan = list(env.unwrapped.task.gold_path[:-1]) + list(actions)
    for action in plan:
        obs, reward, terminated, truncated, info = env.step(action)
        record.append((obs, reward, terminated, truncated, info))
        if terminated or truncated:
            break
    return record


@pytest.fixture(scope="module")
def served_url():
    """The url of a loopback ``swirl serve`` of SynthMath, for ``swirl/Remote-v0`` to play."""
    from swirl_envs.server import BackgroundServer, ServerConfig, create_app

    with BackgroundServer(create_app(ServerConfig(env_ids=("swirl/SynthMath-v0",)))) as server:
        yield server.url


def test_every_env_id_and_the_remote_one_are_registered():
    assert set(REGISTERED) == {*ENV_IDS, REMOTE}


@pytest.mark.parametrize("env_id", REGISTERED)
def test_check_env_passes_without_warnings(env_id, tmp_path, request):
    if env_id == REMOTE:
        kwargs = {"url": request.getfixturevalue("served_url")}
    else:
        kwargs = dataset_env_kwargs(env_id, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = gym.make(env_id, **kwargs)
        try:
            check_env(env.unwrapped)  # also makes one env per render mode, and closes twice
        finally:
            env.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_same_seed_gives_identical_rollouts_info_included(env_id, tmp_path):
    filler = ["no call here", "<answer>wrong guess</answer>"]
    first = rollout(make(env_id, tmp_path), 7, filler)
    second = rollout(make(env_id, tmp_path), 7, filler)
    assert first == second


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_env_pickles_mid_episode_and_continues_identically(env_id, tmp_path):
    env = make(env_id, tmp_path).unwrapped
    env.reset(seed=3)
    copy = pickle.loads(pickle.dumps(env))
    for action in env.task.gold_path:
        expected = env.step(action)
        assert copy.step(action) == expected
    assert expected[1] == 1.0


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_gold_path_scores_one_and_a_wrong_answer_zero(env_id, tmp_path):
    env = make(env_id, tmp_path).unwrapped
    env.reset(seed=0, options={"index": 0})
    for action in env.task.gold_path:
        obs, reward, terminated, truncated, info = env.step(action)
    assert (reward, terminated, truncated) == (1.0, True, False)
    env.reset(seed=0, options={"index": 0})
    obs, reward, terminated, truncated, info = env.step("<answer>certainly not this</answer>")
    assert (reward, terminated) == (0.0, True)
    assert info["em"] == 0.0


@pytest.mark.parametrize("env_id", GENERATED)
def test_malformed_actions_truncate_at_the_step_budget(env_id, tmp_path):
    env = make(env_id, tmp_path).unwrapped
    env.reset(seed=0)
    for step in range(1, env.max_steps + 1):
        obs, reward, terminated, truncated, info = env.step("thinking, but no call")
        assert "Error:" in info["feedback"]
        assert reward == 0.0 and not terminated
        assert truncated == (step == env.max_steps)
    with pytest.raises(RuntimeError, match="reset"):
        env.step("<answer>1</answer>")


@pytest.mark.parametrize("env_id", GENERATED)
def test_reset_index_picks_the_task_and_rejects_bad_indices(env_id, tmp_path):
    env = make(env_id, tmp_path).unwrapped
    _, info = env.reset(options={"index": 5})
    assert info["task_id"] == env.tasks[5].id and env.task is env.tasks[5]
    for bad in (-1, len(env.tasks), "3", 1.5):
        with pytest.raises(ValueError, match="index"):
            env.reset(options={"index": bad})


@pytest.mark.parametrize("env_id", GENERATED)
def test_observation_is_the_transcript_and_messages_match_it(env_id, tmp_path):
    env = make(env_id, tmp_path, render_mode="ansi").unwrapped
    obs, info = env.reset(seed=1)
    assert env.task.question in obs
    for action in env.task.gold_path:
        previous = obs
        obs, _, _, _, info = env.step(action)
        assert obs == previous + info["action"] + info["feedback"]
    assert env.render() == obs
    contents = [message["content"] for message in info["messages"]]
    assert contents[0] == env.system_prompt
    assert [m["role"] for m in info["messages"][2::2]] == ["assistant"] * len(env.task.gold_path)
    assert all(content.strip() in obs for content in contents)


@pytest.mark.parametrize("env_id", GENERATED)
def test_the_transcript_layout_functions_rebuild_the_observation_and_messages(env_id, tmp_path):
    env = make(env_id, tmp_path).unwrapped
    prompt, info = env.reset(seed=2)
    assert prompt == first_observation(env.system_prompt, env.task.question)
    assert info["messages"] == transcript_messages(prompt, env.task.question, [])
    steps = []
    for action in env.task.gold_path:
        _, _, _, _, info = env.step(action)
        steps.append((info["action"], info["feedback"]))
        assert info["messages"] == transcript_messages(prompt, env.task.question, steps)
    with pytest.raises(ValueError, match="question"):
        transcript_messages("Just a prompt", env.task.question, [])


@pytest.mark.parametrize("env_id", GENERATED)
def test_tool_schemas_are_published_for_function_calling(env_id, tmp_path):
    env = make(env_id, tmp_path).unwrapped
    names = [schema["function"]["name"] for schema in env.tool_schemas]
    assert names[-1] == "answer" and len(names) == len(env.tools) + 1
    for schema in env.tool_schemas:
        assert schema["type"] == "function"
        assert schema["function"]["parameters"]["required"]


def test_human_render_mode_prints_the_transcript(tmp_path, capsys):
    env = make("swirl/SynthMath-v0", tmp_path, render_mode="human").unwrapped
    env.reset(seed=0)
    env.step(env.task.gold_path[0])
    assert env.task.question in capsys.readouterr().out


@pytest.mark.parametrize(
    ("mode", "vector_kwargs"),
    [("sync", {}), ("async", {}), ("async", {"shared_memory": False}), ("async", {"copy": False})],
)
@pytest.mark.parametrize("env_id", GENERATED)
def test_make_vec_returns_the_same_transcripts_as_single_envs(env_id, mode, vector_kwargs):
    single = [gym.make(env_id).unwrapped for _ in range(2)]
    expected = [env.reset(seed=seed)[0] for env, seed in zip(single, [0, 1], strict=True)]
    envs = gym.make_vec(env_id, num_envs=2, vectorization_mode=mode, vector_kwargs=vector_kwargs)
    observations, infos = envs.reset(seed=[0, 1])
    assert tuple(observations) == tuple(expected)
    actions = [single[0].task.gold_path[0], "not an action"]
    expected = [env.step(action)[0] for env, action in zip(single, actions, strict=True)]
    observations, rewards, terminated, truncated, infos = envs.step(actions)
    assert tuple(observations) == tuple(expected)
    assert envs.observation_space.contains(tuple(observations))
    envs.close()


def test_namespaced_id_makes_the_env_without_importing_the_package():
    script = (
        "import gymnasium as gym; env = gym.make('swirl_envs:swirl/SynthMath-v0');"
        "obs, info = env.reset(seed=0); print(type(env.unwrapped).__name__)"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "SynthMathEnv"
