"""A small OpenAI-compatible HTTP server on 127.0.0.1, scripted per test.

It answers ``POST /v1/chat/completions``, ``POST /v1/embeddings`` (float
or base64 vectors, deterministic per input text) and ``GET /v1/models``,
so the real ``openai`` client can be tested over real HTTP. Chat replies
come from a queue the test fills (``script``); when the queue is empty the
default reply is used. Requests are recorded without their Authorization
header: only whether it carried the expected key is kept.

Run it by hand as ``python tests/fake_openai.py --port 8765 [--kind KIND]``:
it then answers every chat request with a one-action plan of that catalog
kind citing the first chunk id in the prompt, enough to see a model-written
plan end to end.
"""

import argparse
import base64
import hashlib
import json
import re
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

EMBEDDING_DIMENSIONS = 16
_CHUNK_ID = re.compile(r"^### \[([^\]]+)\]", re.MULTILINE)


@dataclass
class Reply:
    """One scripted reply: a status, headers, a body, an optional delay."""

    status: int = 200
    body: dict | str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    # Answer computed from the request, for replies that depend on the prompt.
    responder: Callable[[dict], "Reply"] | None = None

    @classmethod
    def chat(cls, content: str, delay_s: float = 0.0) -> "Reply":
        """A chat completion whose message text is ``content``."""
        return cls(body=_completion(content), delay_s=delay_s)

    @classmethod
    def chat_json(cls, data: dict, delay_s: float = 0.0) -> "Reply":
        return cls.chat(json.dumps(data), delay_s=delay_s)

    @classmethod
    def error(cls, status: int, message: str, **headers: str) -> "Reply":
        body = {"error": {"message": message, "type": "fake_error", "code": status}}
        return cls(status=status, body=body,
                   headers={k.replace("_", "-"): v for k, v in headers.items()})

    @classmethod
    def plan_from_prompt(cls, kind: str = "manual") -> "Reply":
        """A one-action plan of ``kind`` citing the prompt's first chunk."""
        return cls(responder=lambda request: _plan_citing_first_chunk(request, kind))


@dataclass
class RecordedRequest:
    path: str
    body: dict
    authorized: bool          # the Authorization header held the expected key
    headers: dict[str, str]   # every other header


class FakeOpenAI:
    """The server; use as a context manager or call ``start``/``stop``."""

    def __init__(self, expected_key: str | None = None,
                 default: Reply | None = None, port: int = 0):
        self.expected_key = expected_key
        self.default = default or Reply.plan_from_prompt()
        self.requests: list[RecordedRequest] = []
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port),
                                           self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._script.extend(replies)

    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def start(self) -> "FakeOpenAI":
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "FakeOpenAI":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _next_reply(self) -> Reply:
        with self._lock:
            return self._script.popleft() if self._script else self.default

    def _record(self, path: str, body: dict, headers) -> None:
        authorization = headers.get("Authorization", "")
        kept = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        with self._lock:
            self.requests.append(RecordedRequest(
                path=path, body=body, headers=kept,
                authorized=(self.expected_key is not None
                            and authorization == f"Bearer {self.expected_key}")))

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass   # quiet: request lines would clutter test output

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    self._send(Reply(body={"object": "list", "data": [
                        {"id": "fake-model", "object": "model", "owned_by": "test"}]}))
                else:
                    self._send(Reply.error(404, f"no route {self.path}"))

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    self._send(Reply.error(400, "body is not JSON"))
                    return
                fake._record(self.path, body, self.headers)
                if self.path.endswith("/embeddings"):
                    self._send(Reply(body=_embeddings(body)))
                elif self.path.endswith("/chat/completions"):
                    reply = fake._next_reply()
                    if reply.responder is not None:
                        reply = reply.responder(body)
                    self._send(reply)
                else:
                    self._send(Reply.error(404, f"no route {self.path}"))

            def _send(self, reply: Reply) -> None:
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                payload = (reply.body if isinstance(reply.body, str)
                           else json.dumps(reply.body or {}))
                data = payload.encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass   # the client gave up waiting (a timeout test)

        return Handler


def _completion(content: str) -> dict:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "fake-model",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


def _plan_citing_first_chunk(request: dict, kind: str) -> Reply:
    prompt = "\n".join(str(m.get("content", "")) for m in request.get("messages", []))
    chunk_ids = _CHUNK_ID.findall(prompt)
    if not chunk_ids:
        return Reply.chat_json({"root_cause": "no runbook context was given",
                                "actions": [], "next_steps": []})
    return Reply.chat_json({
        "root_cause": "The change named in the incident facts, per the first "
                      "runbook section given.",
        "actions": [{"text": "Follow the first runbook section's first step.",
                     "kind": kind, "chunk_ids": [chunk_ids[0]]}],
        "next_steps": ["Confirm recovery from the metrics."],
    })


def _embeddings(request: dict) -> dict:
    inputs = request.get("input", [])
    if not isinstance(inputs, list) or (inputs and isinstance(inputs[0], int)):
        inputs = [inputs]
    as_base64 = request.get("encoding_format") == "base64"
    data = []
    for index, item in enumerate(inputs):
        vector = embedding_for(json.dumps(item) if not isinstance(item, str) else item)
        if as_base64:
            packed = struct.pack(f"<{len(vector)}f", *vector)
            encoded: object = base64.b64encode(packed).decode()
        else:
            encoded = vector
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    return {"object": "list", "data": data, "model": request.get("model", "fake"),
            "usage": {"prompt_tokens": 0, "total_tokens": 0}}


def embedding_for(text: str, dimensions: int = EMBEDDING_DIMENSIONS) -> list[float]:
    """A deterministic unit vector for ``text`` (same text, same vector)."""
    digest = hashlib.sha256(text.encode()).digest()
    raw = [(byte - 127.5) / 127.5 for byte in digest[:dimensions]]
    norm = sum(v * v for v in raw) ** 0.5 or 1.0
    return [v / norm for v in raw]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--kind", default="manual",
                        help="catalog kind of the one action it answers with")
    args = parser.parse_args()
    with FakeOpenAI(port=args.port,
                    default=Reply.plan_from_prompt(args.kind)) as server:
        print(f"OpenAI-compatible test server on {server.base_url}", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
