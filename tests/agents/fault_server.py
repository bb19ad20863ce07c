"""A real OpenAI-compatible HTTP server on 127.0.0.1 that can be told to misbehave.

Tests start it in a thread, point ``OpenAIPolicy`` at ``server.base_url`` and queue
faults; each request takes the next fault (or ``"ok"`` when the queue is empty):

- ``"ok"``: a normal reply from the ``respond(body) -> text`` callable;
- ``"500"``, ``"503"``, ``"429"``, ``"400"``, ...: that HTTP status with an error body;
- ``"slow:SECONDS"``: sleep, then reply normally (a client timeout fires first);
- ``"drop"``: read the request and close the connection without a reply;
- ``"malformed"``: status 200 with a body that is not JSON.

Like OpenAI's API, a reply is cut before the first of the request's ``stop``
strings, which is dropped (``finish_reason == "stop"``).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Responder = Callable[[dict[str, Any]], str]


class FaultServer:
    """An OpenAI-compatible ``/v1/chat/completions`` and ``/v1/completions`` server with faults."""

    def __init__(self, respond: Responder, faults: Iterable[str] = ()):
        self.respond = respond
        self.faults: deque[str] = deque(faults)
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        """The API root to give a client (``http://127.0.0.1:PORT/v1``)."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> FaultServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def next_fault(self) -> str:
        with self._lock:
            return self.faults.popleft() if self.faults else "ok"

    def enter(self, body: dict[str, Any], headers: dict[str, str]) -> None:
        with self._lock:
            self.requests.append(body)
            self.headers.append(headers)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1


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
    usage = {"prompt_tokens": 7, "completion_tokens": max(1, len(text.split()))}
    return {"id": "cmpl-test", "object": "completion", "choices": [choice], "usage": usage}


def _handler_for(server: FaultServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet tests
            return

        def do_POST(self) -> None:  # noqa: N802 - the http.server naming
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            server.enter(body, dict(self.headers))
            try:
                self._answer(body, server.next_fault())
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout); nothing to do
            finally:
                server.leave()

        def _answer(self, body: dict[str, Any], fault: str) -> None:
            if fault == "drop":
                self.close_connection = True
                return
            if fault.startswith("slow:"):
                time.sleep(float(fault.split(":", 1)[1]))
                fault = "ok"
            if fault == "malformed":
                self._send(200, b'{"choices": [{"text": "unterminated')
                return
            if fault != "ok":
                error = {"error": {"message": f"injected fault {fault}", "type": "server_error"}}
                self._send(int(fault), json.dumps(error).encode(), {"Retry-After": "0"})
                return
            chat = self.path.endswith("/chat/completions")
            reply = completion(body, server.respond(body), chat)
            self._send(200, json.dumps(reply).encode())

        def _send(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(payload)

    return Handler
