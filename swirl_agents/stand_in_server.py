"""A stand-in for vLLM: an OpenAI-compatible server on loopback, with latency and faults.

For tests and benchmarks of the HTTP policy and judge without a model. It serves
``POST /v1/chat/completions``, ``POST /v1/completions`` and ``GET /v1/models``; each
reply comes from a ``respond(body) -> text`` callable (``oracle_responder`` plays an
env's gold path, so episodes end as the oracle's do). Like a model server it

- takes ``latency_per_token`` seconds per completion token (about 4 characters), and
- decodes at most ``slots`` requests at once (vLLM's ``max_num_seqs``); the rest queue,
  so one replica has a fixed capacity and more replicas add capacity.

A test can queue faults; each request takes the next one (``"ok"`` when none is left):

- ``"ok"``: a normal reply;
- ``"500"``, ``"503"``, ``"429"``, ``"400"``, ...: that HTTP status with an error body;
- ``"slow:SECONDS"``: sleep, then reply normally (a client timeout fires first);
- ``"drop"``: read the request and close the connection without a reply;
- ``"malformed"``: status 200 with a body that is not JSON.

``kill()`` aborts every open connection and stops listening, as a killed process would;
a new server on the same ``port`` is the replica restarted. As a process, for a
benchmark that kills it with SIGKILL::

    python -m swirl_agents.stand_in_server --port 8001 --env swirl/SynthMath-v0 \\
        --latency-per-token 0.02 --slots 8

prints ``ready http://127.0.0.1:8001/v1`` once it listens. Like OpenAI's API, a reply is
cut before the first of the request's ``stop`` strings (``finish_reason == "stop"``).
"""

from __future__ import annotations

import argparse
import json
import math
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Responder = Callable[[dict[str, Any]], str]
"""``respond(request body) -> completion text``."""

CHARS_PER_TOKEN = 4
"""The token estimate of the usage counts and the latency (a common rule of thumb)."""


def count_tokens(text: str) -> int:
    """Completion tokens of ``text`` as the stand-in counts them (at least one)."""
    return max(1, math.ceil(len(text) / CHARS_PER_TOKEN))


class StandInServer:
    """An OpenAI-compatible server in a background thread; a context manager.

    Args:
        respond: The reply text of a request body.
        faults: Faults for the first requests, in order.
        latency_per_token: Seconds of decoding per completion token.
        slots: Requests decoded at once (``None``: no limit).
        port: The loopback port (0 picks a free one).
        model: The name ``GET /v1/models`` lists.
        record: Keep each request's body and headers (tests read them; a long-running
            process should not).
    """

    def __init__(
        self,
        respond: Responder,
        faults: Iterable[str] = (),
        *,
        latency_per_token: float = 0.0,
        slots: int | None = None,
        port: int = 0,
        model: str = "stand-in",
        record: bool = True,
    ):
        if latency_per_token < 0 or (slots is not None and slots < 1):
            raise ValueError("need latency_per_token >= 0 and slots >= 1.")
        self.respond = respond
        self.faults: deque[str] = deque(faults)
        self.latency_per_token = latency_per_token
        self.model = model
        self.record = record
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.served = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self._slots = threading.Semaphore(slots) if slots else None
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        """The port it listens on."""
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        """The API root to give a client (``http://127.0.0.1:PORT/v1``)."""
        return f"http://127.0.0.1:{self.port}/v1"

    def serve_forever(self) -> None:
        """Serve in this thread until ``stop`` (which then returns within 50 ms)."""
        self._server.serve_forever(poll_interval=0.05)

    def start(self) -> StandInServer:
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening; requests being answered finish."""
        self._server.shutdown()
        self._server.server_close()

    def kill(self) -> None:
        """Stop listening and abort every open connection, as a killed process would."""
        self.stop()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by the client

    def __enter__(self) -> StandInServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def next_fault(self) -> str:
        """The fault for the next request (``"ok"`` when none is queued)."""
        with self._lock:
            return self.faults.popleft() if self.faults else "ok"

    def decode(self, text: str) -> None:
        """Take the time a model server takes to generate ``text`` (in one of the slots)."""
        if not self.latency_per_token:
            return
        seconds = count_tokens(text) * self.latency_per_token
        if self._slots is None:
            time.sleep(seconds)
            return
        with self._slots:
            time.sleep(seconds)

    def _enter(self, body: dict[str, Any], headers: dict[str, str]) -> None:
        with self._lock:
            if self.record:
                self.requests.append(body)
                self.headers.append(headers)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _leave(self, answered: bool) -> None:
        with self._lock:
            self.in_flight -= 1
            self.served += answered

    def _connect(self, connection: socket.socket, opened: bool) -> None:
        with self._lock:
            if opened:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)


def completion(body: dict[str, Any], text: str, chat: bool) -> dict[str, Any]:
    """An OpenAI-style reply for ``text``, cut at the request's stop strings."""
    finish = "length"
    cuts = [text.find(s) for s in body.get("stop") or [] if s in text]
    if cuts:
        text, finish = text[: min(cuts)], "stop"
    choice: dict[str, Any] = {"index": 0, "finish_reason": finish}
    if chat:
        choice["message"] = {"role": "assistant", "content": text}
    else:
        choice["text"] = text
    usage = {"prompt_tokens": 7, "completion_tokens": count_tokens(text)}
    return {"id": "cmpl-stand-in", "object": "completion", "choices": [choice], "usage": usage}


def oracle_responder(tasks: Sequence[Any]) -> Responder:
    """Replies with the gold path of the task whose question the request shows.

    The step is the number of assistant turns (chat) or of gold actions already in the
    transcript (completions); past the path, the gold answer. A request that shows no
    known question gets an empty answer, so its episode still ends.
    """
    from swirl_envs.actions import ANSWER_TAG

    by_prompt: dict[str, Any] = {}  # the first user turn -> its task, found once

    def respond(body: dict[str, Any]) -> str:
        messages = body.get("messages") or [{"role": "user", "content": body.get("prompt", "")}]
        first = next((str(m.get("content")) for m in messages if m.get("role") == "user"), "")
        task = by_prompt.get(first)
        if task is None:
            task = next((task for task in tasks if task.question in first), None)
            if task is None:
                return f"<{ANSWER_TAG}></{ANSWER_TAG}>"
            if "messages" in body:  # a completions prompt is the whole transcript: not cached
                by_prompt[first] = task
        if "messages" in body:
            step = sum(m["role"] == "assistant" for m in messages)
        else:
            step = sum(action in first for action in task.gold_path)
        if step < len(task.gold_path):
            return task.gold_path[step]
        return f"<{ANSWER_TAG}>{task.answer}</{ANSWER_TAG}>"

    return respond


def _handler_for(server: StandInServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stay quiet
            return

        def setup(self) -> None:
            super().setup()
            server._connect(self.connection, opened=True)

        def finish(self) -> None:
            server._connect(self.connection, opened=False)
            try:
                super().finish()
            except OSError:
                pass  # the connection was aborted (kill) or the client went away

        def do_GET(self) -> None:  # noqa: N802 - the http.server naming
            if self.path.rstrip("/").endswith("/models"):
                models = {"object": "list", "data": [{"id": server.model, "object": "model"}]}
                self._send(200, json.dumps(models).encode())
            else:
                self._send(404, b'{"error": {"message": "not found"}}')

        def do_POST(self) -> None:  # noqa: N802 - the http.server naming
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            server._enter(body, dict(self.headers))
            answered = False
            try:
                answered = self._answer(body, server.next_fault())
            except OSError:
                pass  # the client gave up (timeout) or the server was killed
            finally:
                server._leave(answered)

        def _answer(self, body: dict[str, Any], fault: str) -> bool:
            if fault == "drop":
                self.close_connection = True
                return False
            if fault.startswith("slow:"):
                time.sleep(float(fault.split(":", 1)[1]))
                fault = "ok"
            if fault == "malformed":
                self._send(200, b'{"choices": [{"text": "unterminated')
                return True
            if fault != "ok":
                error = {"error": {"message": f"injected fault {fault}", "type": "server_error"}}
                self._send(int(fault), json.dumps(error).encode(), {"Retry-After": "0"})
                return True
            chat = self.path.endswith("/chat/completions")
            reply = completion(body, server.respond(body), chat)
            choice = reply["choices"][0]
            server.decode(choice["message"]["content"] if chat else choice["text"])
            self._send(200, json.dumps(reply).encode())
            return True

        def _send(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(payload)

    return Handler


def main(argv: Sequence[str] | None = None) -> None:
    """Serve until killed: an env's oracle answers at a model server's pace."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="loopback port (0: a free one)")
    parser.add_argument("--env", default="swirl/SynthMath-v0", help="env whose gold paths to play")
    parser.add_argument("--env-kwargs", default="{}", help="JSON of the env's arguments")
    parser.add_argument("--latency-per-token", type=float, default=0.02, help="seconds per token")
    parser.add_argument("--slots", type=int, default=8, help="requests decoded at once")
    parser.add_argument("--model", default="stand-in", help="the served model's name")
    args = parser.parse_args(argv)

    import gymnasium as gym

    import swirl_envs  # noqa: F401 - registers the env ids

    env = gym.make(args.env, **json.loads(args.env_kwargs))
    server = StandInServer(
        oracle_responder(env.unwrapped.tasks),
        latency_per_token=args.latency_per_token,
        slots=args.slots,
        port=args.port,
        model=args.model,
        record=False,
    )
    print(f"ready {server.base_url}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
