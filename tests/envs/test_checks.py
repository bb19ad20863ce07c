"""``check_tasks``: every shipped env's gold paths replay to reward 1, and a wrong one is named."""

from __future__ import annotations

import gymnasium as gym
import pytest

import swirl_envs
from swirl_envs import Passage, Task, TaskCheckError, check_tasks
from swirl_envs.env import SwirlEnv
from swirl_envs.scoring import math_scores
from swirl_envs.tools.base import Tool, ToolResult
from swirl_envs.tools.calculator import Calculator
from swirl_envs.tools.search import SearchTool
from tests.envs.dataset_fixtures import dataset_env_kwargs, write_musique

GENERATED = ["swirl/SynthMath-v0", "swirl/SynthHop-v0"]
REAL = sorted(set(swirl_envs.ENV_IDS) - set(GENERATED))


@pytest.mark.parametrize("split", ["train", "test"])
@pytest.mark.parametrize("env_id", GENERATED)
def test_every_generated_task_replays_its_gold_path_to_reward_1(env_id, split):
    env = gym.make(env_id, split=split)
    report = check_tasks(env)
    assert report.ok and report.checked == len(env.unwrapped.tasks) >= 500


@pytest.mark.parametrize("search", ["distractor", "open"])
@pytest.mark.parametrize("env_id", REAL)
def test_every_fixture_task_of_the_real_datasets_replays_to_reward_1(env_id, search, tmp_path):
    kwargs = dataset_env_kwargs(env_id, tmp_path)
    if env_id != "swirl/GSM8K-v0":
        kwargs["search"] = search
    report = check_tasks(gym.make(env_id, **kwargs))
    assert report.ok and report.checked >= 2


def test_musique_full_unanswerable_questions_replay_to_reward_1(tmp_path):
    env = gym.make("swirl/MuSiQue-v0", data_path=str(write_musique(tmp_path, full=True)),
                   variant="full")  # fmt: skip
    assert not all(task.answerable for task in env.unwrapped.tasks)
    assert check_tasks(env).ok


class Exploding(Tool):
    """A lookup tool with a bug."""

    name = tag = "lookup"
    argument, description = "key", "Look a key up."

    def __call__(self, argument: str, task: Task) -> ToolResult:
        raise KeyError(argument)


QUESTION = "Ada has 12 beads and buys 5 more. How many does she have?"


def unit_task(task_id: str, *gold_path: str, answers: tuple[str, ...] = ("17",)) -> Task:
    return Task(task_id, QUESTION, answers, gold_path, passages=(Passage("Ada", "Ada."),))


CASES = [  # (task, the reason check_tasks gives, or None when the task is sound)
    (unit_task("good", "<math_exp>12 + 5</math_exp>", "<answer>17</answer>"), None),
    (unit_task("wrong-answer", "<math_exp>12 + 5</math_exp>", "<answer>18</answer>"),
     "the gold answer '18' gets reward 0, not 1 (gold answers: ['17'])"),
    (unit_task("malformed", "<math_exp>12 + 5", "<answer>17</answer>"),
     "gold step 1 of 2 is malformed (Unclosed or nested tag."),
    (unit_task("tool-error", "<math_exp>12 / 0</math_exp>", "<answer>17</answer>"),
     "gold step 1 of 2: the calculator tool answered with an error: 'Error:"),
    (unit_task("tool-raises", "<lookup>Ada</lookup>", "<answer>17</answer>"),
     "gold step 1 of 2 raised KeyError: 'Ada'"),
    (unit_task("early", "<answer>17</answer>", "<math_exp>12 + 5</math_exp>"),
     "gold step 1 of 2 answers, so the 1 gold action(s) after it never run"),
    (unit_task("no-answer", "<math_exp>12 + 5</math_exp>"),
     "the gold path ends after 1 action(s) without an answer"),
    (unit_task("too-long", *["<math_exp>12 + 5</math_exp>"] * 3, "<answer>17</answer>"),
     "the step budget (max_steps=3) runs out at gold step 3 of 4"),
    (unit_task("empty"), "it has no gold path"),
    (unit_task("good", "<math_exp>12 + 5</math_exp>", "<answer>17</answer>"),
     "its id repeats task 0's; episodes and judgements are keyed by task id"),
    (unit_task("searched", "<search_query>Ada</search_query>", "<answer>17</answer>"), None),
]  # fmt: skip


def test_each_task_whose_gold_path_is_wrong_is_reported_with_why():
    tasks = [task for task, _ in CASES]
    tools = [Calculator(), Exploding(), SearchTool("distractor")]
    env = SwirlEnv(tasks, tools, system_prompt="{max_steps}", max_steps=3, scorer=math_scores)
    report = check_tasks(env, raise_on_failure=False)
    assert report.checked == len(CASES) and not report.ok
    expected = [(index, reason) for index, (_, reason) in enumerate(CASES) if reason]
    assert [failure.index for failure in report.failures] == [index for index, _ in expected]
    for failure, (index, reason) in zip(report.failures, expected, strict=True):
        assert failure.task_id == CASES[index][0].id
        assert failure.reason.startswith(reason), failure.reason
    wrong = report.failures[0]
    assert wrong.transcript.endswith("<answer>18</answer>")  # where the replay stopped
    with pytest.raises(TaskCheckError, match=r"2 of 11 gold paths replay to 1") as raised:
        check_tasks(gym.wrappers.OrderEnforcing(env))  # a wrapped env is checked the same
    assert raised.value.report == report
    assert "- task 1 ('wrong-answer'): the gold answer '18'" in str(raised.value)
    assert report.format(limit=2).endswith(f"- ... and {len(expected) - 2} more")


def test_check_tasks_needs_a_swirl_env():
    with pytest.raises(TypeError, match="SwirlEnv"):
        check_tasks(gym.make("CartPole-v1"))
