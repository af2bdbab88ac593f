"""A hostile admin API for the operator commands' tests (R1-R12 sweeps, R14 reports): a
local HTTP server on 127.0.0.1 that answers each request with what the test scripted,
however wrong (HTML, JSON of the wrong type, unknown statuses, slow answers, closed
connections, bytes that are not HTTP), and records what it was sent."""

import json
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs

ANSWER, CLOSE, GARBAGE, SLOW, SIGINT = "answer", "close", "garbage", "slow", "sigint"


@attrs.frozen
class Answer:
    """One answer: an HTTP status and body, or something that is not an answer."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    action: str = ANSWER
    # SLOW: seconds before answering; SIGINT: Ctrl-Cs sent to this process first.
    delay_s: float = 0.0
    interrupts: int = 1

    @classmethod
    def json(cls, value: Any, status: int = 200) -> "Answer":
        return cls(status, json.dumps(value).encode())


@attrs.frozen
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class HostileServer:
    """Each method's requests take its scripted answers in turn; once they are used up,
    ``then`` answers (by default a completed sweep, so that a follower always ends)."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self._answers: dict[str, list[Answer]] = {}
        self._then: dict[str, Answer] = {}
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 5.0

            def do_GET(self) -> None:
                server._answer(self)

            do_POST = do_DELETE = do_PUT = do_GET

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # the client went away first: what it is meant to do

        self._httpd = Server(("127.0.0.1", 0), Handler)
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def script(self, then: dict[str, Answer] | None = None, **answers: list[Answer]) -> None:
        with self._lock:
            self.received = []
            self._answers = {method: list(queue) for method, queue in answers.items()}
            self._then = {
                "POST": Answer.json({"sweep_id": "s1"}, 202),
                "GET": Answer.json(completed_sweep()),
                "DELETE": Answer.json({}),
                **(then or {}),
            }

    def requests(self, method: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.method == method]

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        method = handler.command
        with self._lock:
            self.received.append(Received(method, handler.path, dict(handler.headers), body))
            queue = self._answers.get(method) or []
            answer = queue.pop(0) if queue else self._then.get(method, Answer(404))
        handler.close_connection = True
        if answer.action == CLOSE:
            return
        if answer.action == GARBAGE:
            handler.wfile.write(b"\x00\xff this is not HTTP\r\n\r\n")
            return
        if answer.action == SLOW:
            time.sleep(answer.delay_s)
        if answer.action == SIGINT:
            for _ in range(answer.interrupts):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.2)
        try:
            handler.send_response(answer.status)
            handler.send_header("Content-Type", answer.content_type)
            handler.send_header("Content-Length", str(len(answer.body)))
            for name, value in answer.headers:
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(answer.body)
        except OSError:
            pass  # the client gave up waiting (SLOW)


def completed_sweep(status: str = "completed", **fields: Any) -> dict[str, Any]:
    """A well-formed ``GET /sweeps/{id}`` record."""
    return {
        "sweep_id": "s1",
        "status": status,
        "as_of": 1_767_225_600_000,
        "dry_run": False,
        "started_ts": 1_000,
        "finished_ts": None if status == "running" else 2_000,
        "current_rule": "messages" if status == "running" else None,
        "results": {
            "messages": {"candidates": 2, "deleted": 2, "held": 0, "skipped": 0, "errors": 0}
        },
        "rate_per_s": 2.0,
        "eta_s": None,
        **fields,
    }


@contextmanager
def listener(greeting: bytes | None) -> Iterator[int]:
    """A TCP port on 127.0.0.1 that is not HTTP: it sends ``greeting`` (an SSH banner, say)
    and reads, or with None says nothing at all (a TLS client then waits for its
    handshake). Its port; it is closed afterwards."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    stop = threading.Event()

    def serve() -> None:
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            with conn:
                if greeting is not None:
                    conn.sendall(greeting)
                conn.settimeout(3.0)
                try:
                    conn.recv(65536)
                    if greeting is None:
                        stop.wait(3.0)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        sock.close()
