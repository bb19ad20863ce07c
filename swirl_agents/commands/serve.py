"""``swirl serve``: serve envs over HTTP to agents in any language (see ``swirl_envs.server``)."""

from __future__ import annotations

import argparse

from swirl_agents.flags import json_object


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``swirl serve``."""
    parser = subparsers.add_parser(
        "serve",
        help="serve environments over HTTP (reset/step/close sessions)",
        description="Serve swirl environments over HTTP: POST /sessions, then "
        "/sessions/{id}/reset and /sessions/{id}/step; DELETE /sessions/{id}.",
    )
    parser.add_argument(
        "--env", dest="env_ids", action="append", required=True, metavar="ID",
        help="an env id to serve (repeat for several; the first is the default)",
    )  # fmt: skip
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: loopback only)"
    )
    parser.add_argument("--port", type=int, default=8000, help="port to bind")
    parser.add_argument(
        "--env-kwargs", type=json_object, default={}, metavar="JSON",
        help="JSON object of arguments every env is made with, e.g. '{\"split\": \"test\"}'",
    )  # fmt: skip
    parser.add_argument(
        "--allow-kwarg", dest="allowed_kwargs", action="append", default=[], metavar="NAME",
        help="an env argument clients may set when opening a session (repeatable)",
    )  # fmt: skip
    parser.add_argument("--max-sessions", type=int, default=256, help="open sessions at most")
    parser.add_argument(
        "--idle-timeout", type=float, default=600.0, help="seconds before an idle session closes"
    )
    parser.add_argument(
        "--max-body-bytes", type=int, default=1 << 20, help="largest request body accepted"
    )
    parser.add_argument("--log-level", default="info", help="uvicorn log level")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Check every env can be made, then serve in the foreground until stopped.

    A bad setting or a missing data file refuses to start, with the loader's message (which
    file, where to get it), instead of answering every session with an error.
    """
    try:
        from swirl_envs.server import ServerConfig, serve
    except ImportError as error:
        raise ValueError(f"{error} (pip install -e '.[server]')") from error
    from swirl_agents.stages import make_env

    config = ServerConfig(
        env_ids=tuple(args.env_ids),
        env_kwargs=args.env_kwargs,
        allowed_kwargs=frozenset(args.allowed_kwargs),
        max_sessions=args.max_sessions,
        idle_timeout=args.idle_timeout,
        max_body_bytes=args.max_body_bytes,
    )
    for env_id in config.env_ids:
        make_env(env_id, config.env_kwargs).close()
    serve(config, host=args.host, port=args.port, log_level=args.log_level)
    return 0
