"""An HTTP env server: agents in any language, on any machine, play swirl episodes.

``swirl serve --env swirl/HotPotQA-v0 --port 8000`` serves one or more env ids. Each
client opens its own session (one env instance) and plays it with JSON requests::

    GET    /health                 -> {"status": "ok", "sessions": n, "max_sessions": m}
    GET    /envs                   -> {"envs": [ids], "allowed_kwargs": [names]}
    POST   /sessions               {"env_id"?: str, "kwargs"?: {name: value}}
                                   -> 201 {"session_id", "env_id", "observation_space",
                                           "action_space", "tool_schemas"}
    POST   /sessions/{id}/reset    {"seed"?: int, "options"?: {...}} -> {"observation", "info"}
    POST   /sessions/{id}/step     {"action": str}
                                   -> {"observation", "reward", "terminated", "truncated", "info"}
    DELETE /sessions/{id}          -> {"closed": true}

Every refusal is a 4xx or 5xx whose JSON ``detail`` says what was wrong: malformed JSON
or a wrong type (422), an unknown env, a kwarg outside the allowlist or an env that cannot
be made, its data missing say (400, with the loader's message), a body over
the size limit (413, checked on ``Content-Length`` and on the bytes actually read),
an unknown or expired session (404), a step before reset or after the episode ended,
or a second request on a session while one is in progress (409), too many sessions
(503), an env that failed (500). A ``detail`` quotes at most ``MAX_QUOTED_CHARS`` of
any value the client sent, so a refusal stays short whatever the request held.
Session ids come from ``secrets.token_urlsafe``: a client can only act on a
session whose id it was given. Idle sessions expire. Env calls run in a thread pool,
so a slow step does not hold up other sessions.

There is no authentication: bind to 127.0.0.1 (the default) or put the server behind
a proxy that authenticates when other machines must reach it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import secrets
import threading
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

import swirl_envs  # noqa: F401  (registers the env ids that gym.make resolves)
from swirl_envs.client import space_to_json

try:
    from fastapi import FastAPI, HTTPException
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from pydantic import BaseModel, ConfigDict, Field
    from starlette.concurrency import run_in_threadpool
    from starlette.datastructures import Headers
    from starlette.types import ASGIApp, Message, Receive, Scope, Send
except ImportError as error:  # pragma: no cover - depends on the install
    raise ImportError(
        "swirl_envs.server needs FastAPI: pip install 'swirl-gym[server]'."
    ) from error

logger = logging.getLogger(__name__)

JsonScalar = str | int | float | bool | None

MAX_QUOTED_CHARS = 100
"""The most characters of one client-sent value that a refusal's ``detail`` quotes."""
MAX_DETAIL_CHARS = 500
"""The most characters of an env's error message (which may quote client values) shown."""


@dataclass(frozen=True)
class ServerConfig:
    """What a server serves and the limits it enforces.

    Args:
        env_ids: The env ids clients may open (the first is the default).
        env_kwargs: Arguments every env is made with (server-side, e.g. data paths).
        allowed_kwargs: Names of env arguments a client may set when opening a session.
        max_sessions: Open sessions at most; further opens get 503.
        idle_timeout: Seconds without a request after which a session is closed.
        max_body_bytes: Largest request body accepted.
    """

    env_ids: tuple[str, ...]
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)
    allowed_kwargs: frozenset[str] = frozenset()
    max_sessions: int = 256
    idle_timeout: float = 600.0
    max_body_bytes: int = 1 << 20

    def __post_init__(self) -> None:
        if not self.env_ids:
            raise ValueError("ServerConfig needs at least one env id.")
        for env_id in self.env_ids:
            try:
                gym.spec(env_id)
            except gym.error.Error as error:
                raise ValueError(f"Cannot serve {env_id!r}: {error}") from error
        if self.max_sessions < 1 or self.idle_timeout <= 0 or self.max_body_bytes < 1:
            raise ValueError(
                "max_sessions, idle_timeout and max_body_bytes must be positive, got "
                f"{self.max_sessions}, {self.idle_timeout} and {self.max_body_bytes}."
            )


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class CreateSession(_Strict):
    """Body of ``POST /sessions``."""

    env_id: str | None = None
    kwargs: dict[str, JsonScalar] = Field(default_factory=dict)


class ResetRequest(_Strict):
    """Body of ``POST /sessions/{id}/reset``."""

    seed: int | None = Field(default=None, ge=0, lt=2**63)
    options: dict[str, Any] | None = None


class StepRequest(_Strict):
    """Body of ``POST /sessions/{id}/step``."""

    action: str


@dataclass
class Session:
    """One client's env and its bookkeeping."""

    env: gym.Env
    env_id: str
    pool_key: tuple[str, str]
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    last_used: float = field(default_factory=time.monotonic)
    needs_reset: bool = True


class Sessions:
    """The open sessions, plus a pool of envs that closed sessions left behind.

    Making an env can take a second (generating tasks, loading data); a closed
    session's env goes back to a pool and serves the next session with the same env
    id and kwargs. A session must reset before its first step, which replaces all
    episode state, so nothing of the previous session is visible.
    """

    def __init__(self, config: ServerConfig):
        self.config = config
        self.open: dict[str, Session] = {}
        self._pool: dict[tuple[str, str], list[gym.Env]] = {}
        self._opening = 0

    async def create(self, env_id: str, kwargs: dict[str, Any]) -> tuple[str, Session]:
        """Open a session (503 when full); the env comes from the pool or is made."""
        if len(self.open) + self._opening >= self.config.max_sessions:
            await self.expire()
        if len(self.open) + self._opening >= self.config.max_sessions:
            raise HTTPException(
                503,
                f"The server holds its maximum of {self.config.max_sessions} sessions; "
                "close one (DELETE /sessions/{id}) or retry later.",
            )
        arguments = {**self.config.env_kwargs, **kwargs}
        key = (env_id, json.dumps(arguments, sort_keys=True, default=str))
        self._opening += 1
        try:
            pooled = self._pool.get(key)
            env = pooled.pop() if pooled else await run_in_threadpool(gym.make, env_id, **arguments)
        except (ValueError, TypeError, OSError, gym.error.Error) as error:  # OSError: no data
            raise HTTPException(400, f"Could not make {env_id}: {_error_text(error)}") from error
        finally:
            self._opening -= 1
        session_id = secrets.token_urlsafe(32)
        self.open[session_id] = Session(env, env_id, key)
        return session_id, self.open[session_id]

    @asynccontextmanager
    async def use(self, session_id: str) -> AsyncIterator[Session]:
        """Hold a session for one request: 404 when unknown, 409 when already in use."""
        session = self.open.get(session_id)
        if session is None:
            raise HTTPException(404, "Unknown or expired session; open one with POST /sessions.")
        if session.lock.locked():
            raise HTTPException(409, "Another request on this session is in progress; wait for it.")
        async with session.lock:
            try:
                yield session
            finally:
                session.last_used = time.monotonic()

    async def close(self, session_id: str) -> None:
        """Close a session; its env returns to the pool unless the pool is full."""
        session = self.open.pop(session_id, None)
        if session is None:
            return
        if sum(len(envs) for envs in self._pool.values()) < self.config.max_sessions:
            self._pool.setdefault(session.pool_key, []).append(session.env)
        else:
            await _close_env(session.env)

    async def expire(self) -> int:
        """Close the sessions idle for longer than the timeout; return how many."""
        deadline = time.monotonic() - self.config.idle_timeout
        closed = 0
        for session_id in list(self.open):
            # Checked one at a time: closing awaits, and meanwhile a request may take a session.
            session = self.open.get(session_id)
            if session and session.last_used < deadline and not session.lock.locked():
                await self.close(session_id)
                closed += 1
        return closed

    async def expire_forever(self) -> None:
        """Expire idle sessions every quarter of the timeout (at most every 30 s)."""
        interval = min(max(self.config.idle_timeout / 4, 0.05), 30.0)
        while True:
            await asyncio.sleep(interval)
            expired = await self.expire()
            if expired:
                logger.info("Expired %d idle sessions.", expired)

    async def shutdown(self) -> None:
        """Close every env, open or pooled."""
        envs = [session.env for session in self.open.values()]
        envs += [env for pooled in self._pool.values() for env in pooled]
        self.open.clear()
        self._pool.clear()
        for env in envs:
            await _close_env(env)


def create_app(config: ServerConfig) -> FastAPI:
    """Build the FastAPI app that serves ``config.env_ids``."""
    sessions = Sessions(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        expiry = asyncio.create_task(sessions.expire_forever())
        try:
            yield
        finally:
            expiry.cancel()
            await sessions.shutdown()

    app = FastAPI(title="swirl env server", lifespan=lifespan)
    app.add_middleware(BodyLimit, max_bytes=config.max_body_bytes)
    app.state.sessions = sessions

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Any, error: RequestValidationError) -> JSONResponse:
        # One readable line per problem, without echoing the (possibly huge) input back:
        # a location names the client's keys, so each part, and each line, is clipped.
        problems = [
            _clip(
                f"{'.'.join(_clip(str(part)) for part in problem['loc'])}: {problem['msg']}"
                + (f" ({problem['ctx']['error']})" if problem["type"] == "json_invalid" else ""),
                2 * MAX_QUOTED_CHARS,
            )
            for problem in error.errors()
        ]
        return JSONResponse({"detail": _listed(problems, "; ")}, status_code=422)

    @app.exception_handler(Exception)
    async def internal_error(request: Any, error: Exception) -> JSONResponse:
        # An env bug ends the request, not the server; a session that hit it must reset.
        logger.exception("Request failed.", exc_info=error)
        return JSONResponse(
            {"detail": f"Internal error ({type(error).__name__}); reset the session."},
            status_code=500,
        )

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "sessions": len(sessions.open), "max_sessions": config.max_sessions}

    @app.get("/envs")
    async def envs() -> dict[str, Any]:
        return {"envs": list(config.env_ids), "allowed_kwargs": sorted(config.allowed_kwargs)}

    @app.post("/sessions", status_code=201)
    async def create_session(body: CreateSession | None = None) -> dict[str, Any]:
        body = body or CreateSession()
        env_id = body.env_id or config.env_ids[0]
        if env_id not in config.env_ids:
            raise HTTPException(
                400, f"Unknown env {_quote(env_id)}; this server serves {list(config.env_ids)}."
            )
        refused = sorted(set(body.kwargs) - config.allowed_kwargs)
        if refused:
            allowed = sorted(config.allowed_kwargs)
            names = _listed([_quote(name) for name in refused], ", ")
            raise HTTPException(
                400, f"Env arguments [{names}] are not allowed; allowed: {allowed}."
            )
        session_id, session = await sessions.create(env_id, body.kwargs)
        return {
            "session_id": session_id,
            "env_id": env_id,
            "observation_space": space_to_json(session.env.observation_space),
            "action_space": space_to_json(session.env.action_space),
            "tool_schemas": to_jsonable(getattr(session.env.unwrapped, "tool_schemas", [])),
        }

    @app.post("/sessions/{session_id}/reset")
    async def reset(session_id: str, body: ResetRequest | None = None) -> dict[str, Any]:
        body = body or ResetRequest()
        async with sessions.use(session_id) as session:
            session.needs_reset = True  # until a reset has succeeded
            try:
                observation, info = await run_in_threadpool(
                    session.env.reset, seed=body.seed, options=body.options
                )
            except (ValueError, TypeError, KeyError) as error:
                raise HTTPException(
                    400, f"The env refused to reset: {_error_text(error)}"
                ) from error
            session.needs_reset = False
            return {"observation": to_jsonable(observation), "info": to_jsonable(info)}

    @app.post("/sessions/{session_id}/step")
    async def step(session_id: str, body: StepRequest) -> dict[str, Any]:
        async with sessions.use(session_id) as session:
            if session.needs_reset:
                raise HTTPException(
                    409, "The episode is over or never started; POST /sessions/{id}/reset first."
                )
            session.needs_reset = True  # until the step is known to have succeeded
            observation, reward, terminated, truncated, info = await run_in_threadpool(
                session.env.step, body.action
            )
            session.needs_reset = bool(terminated or truncated)
            return {
                "observation": to_jsonable(observation),
                "reward": to_jsonable(float(reward)),
                "terminated": bool(terminated),
                "truncated": bool(truncated),
                "info": to_jsonable(info),
            }

    @app.delete("/sessions/{session_id}")
    async def close_session(session_id: str) -> dict[str, bool]:
        async with sessions.use(session_id):
            await sessions.close(session_id)
        return {"closed": True}

    return app


def to_jsonable(value: Any) -> Any:
    """Convert env output (numpy values, tuples, non-finite floats) into plain JSON values.

    NaN and infinities become None (JSON has neither); anything unknown becomes its ``str``.
    """
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, np.ndarray | np.generic):
        return to_jsonable(value.tolist())
    if isinstance(value, Mapping):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(item) for item in value]
    return str(value)


KEEP_ALIVE_SECONDS = 30
"""How long an idle connection stays open. Longer than the 5 s after which httpx (and most
clients) drop idle connections themselves, so a client never reuses a connection at the
moment the server closes it (a request lost to that race surfaces as a read error)."""


def serve(
    config: ServerConfig,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "info",
    keep_alive: int = KEEP_ALIVE_SECONDS,
) -> None:
    """Run the server in the foreground until interrupted."""
    import uvicorn

    uvicorn.run(
        create_app(config), host=host, port=port, log_level=log_level, timeout_keep_alive=keep_alive
    )


class BackgroundServer:
    """Run an ASGI app with uvicorn in a daemon thread (tests, benchmarks, notebooks).

    Use as a context manager; ``url`` is valid inside it. Port 0 picks a free port.

    Args:
        app: The ASGI app, e.g. ``create_app(config)``.
        host: The address to bind.
        port: The port to bind (0 for any free one).
        log_level: uvicorn's log level.
    """

    def __init__(
        self, app: Any, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning"
    ):
        import uvicorn

        settings = uvicorn.Config(
            app, host=host, port=port, log_level=log_level, timeout_keep_alive=KEEP_ALIVE_SECONDS
        )
        self._server = uvicorn.Server(settings)
        self._thread = threading.Thread(target=self._server.run, name="swirl-server", daemon=True)
        self.host = host
        self.url = ""

    def __enter__(self) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"The server did not start on {self.host}.")
            time.sleep(0.01)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://{self.host}:{port}"
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)


async def _close_env(env: gym.Env) -> None:
    try:
        await run_in_threadpool(env.close)
    except Exception:  # one env failing to close must not stop the server or the others
        logger.exception("Closing an env failed.")


class BodyLimit:
    """Refuse a request body over ``max_bytes`` with a JSON 413, declared or streamed.

    Starlette's own limit answers an oversized ``Content-Length`` in plain text, while
    clients read ``detail`` from every refusal. A declared length is refused before any
    byte is read; a body without one (chunked) is counted as the route reads it.

    Args:
        app: The ASGI app to guard.
        max_bytes: The largest body accepted.
    """

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes
        self.detail = f"The request body exceeds the server's limit of {max_bytes} bytes."

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if _exceeds(declared, self.max_bytes):
            await JSONResponse({"detail": self.detail}, status_code=413)(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413, self.detail)  # the app's handler answers in JSON
            return message

        await self.app(scope, counted, send)


def _exceeds(declared: str, limit: int) -> bool:
    """Whether a ``Content-Length`` is a number over ``limit``, without converting a huge one."""
    if not (declared.isascii() and declared.isdigit()):
        return False  # absent or malformed: the HTTP parser refuses malformed ones itself
    digits = declared.lstrip("0")
    return len(digits) > len(str(limit)) or int(digits or "0") > limit


def _clip(text: str, limit: int = MAX_QUOTED_CHARS) -> str:
    """``text`` cut to ``limit`` characters, with "..." saying that it was cut."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _quote(value: object) -> str:
    """A client-sent value for a message: its ``repr``, clipped."""
    return _clip(repr(value))


def _listed(items: list[str], separator: str, most: int = 5) -> str:
    """The first ``most`` items joined, then how many more there are."""
    shown = separator.join(items[:most])
    return shown + (f"{separator}and {len(items) - most} more" if len(items) > most else "")


def _error_text(error: BaseException) -> str:
    """An env's error message for a refusal; it may quote client values, so it is clipped."""
    return _clip(str(error), MAX_DETAIL_CHARS)
