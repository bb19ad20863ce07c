"""``swirl_envs`` must work with only its light dependencies installed."""

import subprocess
import sys
import textwrap

HEAVY = ("torch", "transformers", "datasets", "tokenizers", "peft", "fastapi", "uvicorn", "httpx")


def test_swirl_envs_imports_and_runs_with_heavy_packages_blocked():
    script = textwrap.dedent(
        f"""
        import importlib.abc, sys

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {HEAVY!r}:
                    raise ImportError("blocked: " + name)
                return None

        sys.meta_path.insert(0, Block())
        import gymnasium as gym
        import swirl_envs
        from swirl_envs.tools.calculator import Calculator
        from swirl_envs.tools.search import BM25Index

        for env_id in ("swirl/SynthMath-v0", "swirl/SynthHop-v0"):
            env = gym.make(env_id)
            obs, info = env.reset(seed=0)
            for action in env.unwrapped.task.gold_path:
                obs, reward, terminated, truncated, info = env.step(action)
            assert reward == 1.0, (env_id, obs)
        loaded = sorted(name for name in sys.modules if name.split(".")[0] in {HEAVY!r})
        assert not loaded, loaded
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
