"""A ``gymnasium.Env`` that plays a session on a swirl env server over HTTP.

``RemoteEnv`` opens a session on a server started with ``swirl serve`` and forwards
``reset``/``step``/``close`` to it, so code written for a local env (rollouts,
``gymnasium.vector.SyncVectorEnv``/``AsyncVectorEnv``, ``make_vec``) runs against
envs on another machine or in another process::

    env = RemoteEnv("http://127.0.0.1:8000", env_id="swirl/HotPotQA-v0")
    envs = gymnasium.vector.SyncVectorEnv([lambda: RemoteEnv(url)] * 8)

The module also holds the wire format of spaces (``space_to_json``/``space_from_json``)
that the server uses to describe its envs. httpx is imported only when a
``RemoteEnv`` is made, so ``swirl_envs`` stays importable without it.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from swirl_envs.spaces import TranscriptSpace


class RemoteEnvError(RuntimeError):
    """The server refused a request or could not be reached; the message says why.

    Attributes:
        status_code: The HTTP status, or None when no answer came.
    """

    def __init__(self, message: str, status_code: int | None = None):
        super().__init__(message)
        self.status_code = status_code


class RemoteEnv(gym.Env[Any, Any]):
    """A session on a swirl env server, behaving like the env it runs.

    Args:
        url: The server's base URL, e.g. ``"http://127.0.0.1:8000"``.
        env_id: The served env to open; the server's first env when None.
        env_kwargs: Arguments for the env (only those the server allows).
        timeout: Seconds to wait for each request (connecting included).
        render_mode: ``"ansi"`` returns the last observation from ``render()``.

    Attributes:
        session_id: The server's id of this session (a secret: whoever holds it can act).
        tool_schemas: The env's OpenAI function schemas, as the server published them.
    """

    # Gymnasium's checker wants render_fps for any render mode; text has no frame rate,
    # so this is SwirlEnv's nominal 1.
    metadata = {"render_modes": ["ansi"], "render_fps": 1}

    def __init__(
        self,
        url: str,
        env_id: str | None = None,
        env_kwargs: dict[str, Any] | None = None,
        *,
        timeout: float = 30.0,
        render_mode: str | None = None,
    ):
        try:
            import httpx
        except ImportError as error:  # pragma: no cover - depends on the install
            raise ImportError("RemoteEnv needs httpx: pip install 'swirl-gym[server]'.") from error
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}.")
        self.render_mode = render_mode
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout)
        self.session_id: str | None = None
        self._last_observation: Any = None
        body = {"env_id": env_id, "kwargs": env_kwargs or {}}
        try:
            description = self._request("POST", "/sessions", body)
        except BaseException:
            self._http.close()
            raise
        self.session_id = description["session_id"]
        self.env_id: str = description["env_id"]
        self.observation_space = space_from_json(description["observation_space"])
        self.action_space = space_from_json(description["action_space"])
        self.tool_schemas: list[dict[str, Any]] = description.get("tool_schemas", [])

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Start an episode on the server (the seed and options go to the remote env)."""
        super().reset(seed=seed)
        reply = self._request(
            "POST", f"/sessions/{self.session_id}/reset", {"seed": seed, "options": options}
        )
        self._last_observation = self._observation(reply["observation"])
        return self._last_observation, reply["info"]

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Send one action and return what the remote env answered."""
        reply = self._request(
            "POST", f"/sessions/{self.session_id}/step", {"action": _plain(action)}
        )
        self._last_observation = self._observation(reply["observation"])
        return (
            self._last_observation,
            float(reply["reward"]),
            bool(reply["terminated"]),
            bool(reply["truncated"]),
            reply["info"],
        )

    def render(self) -> Any:
        """Return the last observation (``"ansi"``)."""
        return self._last_observation if self.render_mode == "ansi" else None

    def close(self) -> None:
        """End the session on the server (best effort) and close the connection; idempotent."""
        if self.session_id is not None:
            try:
                self._request("DELETE", f"/sessions/{self.session_id}")
            except RemoteEnvError:
                pass  # the server is gone or expired the session: nothing is left to free
            self.session_id = None
        self._http.close()

    def _observation(self, value: Any) -> Any:
        if isinstance(self.observation_space, spaces.Box):
            return np.asarray(value, dtype=self.observation_space.dtype)
        return value

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        import httpx

        try:
            response = self._http.request(method, path, json=body)
        except httpx.HTTPError as error:
            raise RemoteEnvError(f"{method} {self.url}{path} failed: {error!r}") from error
        if response.status_code >= 400:
            raise RemoteEnvError(
                f"{method} {path} -> {response.status_code}: {_detail(response)}",
                response.status_code,
            )
        try:
            return response.json()
        except ValueError as error:
            raise RemoteEnvError(f"{method} {path} answered with invalid JSON.") from error


def space_to_json(space: gym.Space) -> dict[str, Any]:
    """Describe a space as JSON (text, discrete, box and multi-binary spaces round-trip)."""
    if isinstance(space, spaces.Text):
        return {"type": "text", "min_length": space.min_length, "max_length": space.max_length}
    if isinstance(space, spaces.Discrete):
        return {"type": "discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.Box):
        return {
            "type": "box",
            "shape": list(space.shape),
            "dtype": str(space.dtype),
            "low": _bounds_to_json(space.low),
            "high": _bounds_to_json(space.high),
        }
    if isinstance(space, spaces.MultiBinary):
        return {"type": "multi_binary", "n": np.asarray(space.n).tolist()}
    return {"type": type(space).__name__}


def space_from_json(description: dict[str, Any]) -> gym.Space:
    """Rebuild a space from ``space_to_json``'s description; text spaces hold any Unicode."""
    kind = description.get("type")
    if kind == "text":
        return TranscriptSpace(description["max_length"], min_length=description["min_length"])
    if kind == "discrete":
        return spaces.Discrete(description["n"], start=description["start"])
    if kind == "box":
        shape, dtype = tuple(description["shape"]), np.dtype(description["dtype"])
        low = np.array([float(v) for v in description["low"]]).reshape(shape).astype(dtype)
        high = np.array([float(v) for v in description["high"]]).reshape(shape).astype(dtype)
        return spaces.Box(low, high, shape=shape, dtype=dtype)
    if kind == "multi_binary":
        return spaces.MultiBinary(description["n"])
    raise ValueError(f"The server described a space this client cannot rebuild: {description}.")


def _bounds_to_json(values: np.ndarray) -> list[float | str]:
    """Flat Box bounds for JSON, infinities as the strings "inf"/"-inf" (JSON has none)."""
    return [v if math.isfinite(v) else str(v) for v in values.astype(np.float64).ravel().tolist()]


def _plain(action: Any) -> Any:
    return action.tolist() if isinstance(action, np.ndarray | np.generic) else action


def _detail(response: Any) -> str:
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text
    return str(detail)[:500]
