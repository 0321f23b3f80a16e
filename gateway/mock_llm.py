"""The mock LLM upstream: the only fake in Gatehouse (SPEC §4).

Real providers are out of reach from the demo, the tests and the benchmark, so this server stands in for them
and speaks their real wire formats: OpenAI chat completions (plain and SSE streaming, with usage), embeddings
(float and base64) and models, and Anthropic messages (plain and streaming), so that litellm's translation is
exercised for real.

Answers are deterministic. A chat reply is ``echo: `` + the last user message, unless the request header
``x-mock-reply`` sets the reply, or the last user message starts with ``!reply `` (the rest is the reply; this
one passes through a gateway, which must not forward arbitrary client headers). Token counts are computed from
the texts with :func:`count_tokens` (one token per word or punctuation mark), and ``max_tokens`` truncates the
reply as a real model would, with finish reason ``length``.

Faults and delays, per request by header or for every request by path prefix (so a deployment's api_base can
point at a failing or slow upstream)::

    x-mock-latency-ms: 200          /latency/200/v1/...
    x-mock-fail: 503                /fail/503/v1/...        (500, 503, 429, timeout, reset, badjson)
    x-mock-stream-delay-ms: 50      /stream-delay/50/v1/...

``GET /__mock__/requests`` lists the requests received (method, path, headers, body), newest last;
``DELETE /__mock__/requests`` clears the list.

Run it with ``python manage.py mock_llm``, or in-process (tests) with :class:`MockLLMServer`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import math
import multiprocessing
import re
import signal
import struct
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

MODELS = [
    "gpt-4o-mini",
    "gpt-4o",
    "text-embedding-3-small",
    "text-embedding-3-large",
    "claude-3-5-haiku-latest",
    "claude-sonnet-4-5",
]
FAULTS = frozenset({"500", "503", "429", "timeout", "reset", "badjson"})
DEFAULT_EMBEDDING_DIMENSIONS = 16
JOURNAL_SIZE = 1000
# A "timeout" fault holds the request this long at most, so a forgotten client cannot pin the mock forever.
TIMEOUT_FAULT_SECONDS = 300.0

_TOKEN = re.compile(r"\w+|[^\w\s]")
_PIECE = re.compile(r"\s*\S+")
_ids = itertools.count(1)

Json = dict[str, Any]


def count_tokens(text: str) -> int:
    """The mock's tokenizer: one token per run of word characters and per punctuation mark."""
    return len(_TOKEN.findall(text))


def truncate_to_tokens(text: str, limit: int) -> tuple[str, bool]:
    """The text cut after its first ``limit`` tokens, and whether anything was cut."""
    if limit <= 0:
        return "", bool(text)
    for index, match in enumerate(_TOKEN.finditer(text)):
        if index == limit - 1:
            cut = text[: match.end()]
            return cut, cut != text.rstrip()
    return text, False


def _text_of(content: Any) -> str:
    """The text of an OpenAI or Anthropic message content: a string or a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part.get("text", "") for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


# --- directives ------------------------------------------------------------------------------------------


class DirectiveError(ValueError):
    pass


@dataclass(frozen=True)
class Directives:
    latency_ms: int = 0
    fail: str | None = None
    stream_delay_ms: int = 0
    reply: str | None = None


_PREFIXES = {"latency": "latency_ms", "fail": "fail", "stream-delay": "stream_delay_ms"}


def _milliseconds(name: str, raw: str) -> int:
    if not raw.isdigit() or int(raw) > 600_000:
        raise DirectiveError(f"{name} must be a whole number of milliseconds up to 600000, got {raw!r}")
    return int(raw)


def _fault(raw: str) -> str:
    if raw not in FAULTS:
        raise DirectiveError(f"fail must be one of {', '.join(sorted(FAULTS))}, got {raw!r}")
    return raw


def parse_directives(path: str, headers: Any) -> tuple[Directives, str]:
    """Split ``/latency/200/fail/503/v1/chat/completions`` into directives and the API path.

    Header directives win over path directives.
    """
    values: dict[str, Any] = {}
    segments = path.split("/")[1:]
    while len(segments) >= 2 and segments[0] in _PREFIXES:
        values[_PREFIXES[segments[0]]] = segments[1]
        segments = segments[2:]
    api_path = "/" + "/".join(segments)
    for header, key in (
        ("x-mock-latency-ms", "latency_ms"),
        ("x-mock-fail", "fail"),
        ("x-mock-stream-delay-ms", "stream_delay_ms"),
    ):
        if header in headers:
            values[key] = headers[header].strip()
    directives = Directives(
        latency_ms=_milliseconds("latency", values.get("latency_ms", "0")),
        fail=_fault(values["fail"]) if values.get("fail") else None,
        stream_delay_ms=_milliseconds("stream-delay", values.get("stream_delay_ms", "0")),
        reply=headers.get("x-mock-reply"),
    )
    # Clients may or may not put /v1 in their base URL; both reach the same handlers.
    if not api_path.startswith(("/v1/", "/__mock__/")):
        api_path = "/v1" + api_path
    return directives, api_path


# --- responses -------------------------------------------------------------------------------------------


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def openai_error(status: int, message: str, type_: str, code: str | None = None) -> web.Response:
    headers = {"retry-after": "1"} if status == 429 else None
    return _json({"error": {"message": message, "type": type_, "param": None, "code": code}}, status, headers)


def anthropic_error(status: int, message: str, type_: str) -> web.Response:
    headers = {"retry-after": "1"} if status == 429 else None
    return _json({"type": "error", "error": {"type": type_, "message": message}}, status, headers)


_OPENAI_FAULTS = {
    "500": (500, "mock: injected internal server error", "server_error", None),
    "503": (503, "mock: injected service unavailable", "server_error", "service_unavailable"),
    "429": (429, "mock: injected rate limit", "requests", "rate_limit_exceeded"),
}
_ANTHROPIC_FAULTS = {
    "500": (500, "mock: injected internal server error", "api_error"),
    "503": (503, "mock: injected overload", "overloaded_error"),
    "429": (429, "mock: injected rate limit", "rate_limit_error"),
}


def _reply_for(messages: list[Any], directives: Directives) -> str:
    last_user = ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            last_user = _text_of(message.get("content"))
            break
    if directives.reply is not None:
        return directives.reply
    if last_user.startswith("!reply "):
        return last_user[len("!reply ") :]
    return "echo: " + last_user


def _prompt_tokens(messages: list[Any], system: Any = None) -> int:
    texts = [_text_of(system)] if system else []
    texts += [_text_of(m.get("content")) for m in messages if isinstance(m, dict)]
    return sum(count_tokens(text) for text in texts)


def _max_tokens(body: Json, *names: str) -> int | None:
    for name in names:
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _embedding(text: str, dimensions: int) -> list[float]:
    raw = hashlib.shake_256(text.encode()).digest(dimensions * 2)
    values = [(v / 32767.5) - 1.0 for v in struct.unpack(f"<{dimensions}H", raw)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


class SSE:
    """Writes server-sent events, honouring the stream-delay directive between them."""

    def __init__(self, response: web.StreamResponse, delay_ms: int) -> None:
        self.response = response
        self.delay = delay_ms / 1000

    async def send(self, data: Any, event: str | None = None) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
        prefix = f"event: {event}\n" if event else ""
        await self.response.write(f"{prefix}data: {payload}\n\n".encode())


async def _open_stream(request: web.Request, delay_ms: int) -> SSE:
    response = web.StreamResponse(headers={"content-type": "text/event-stream", "cache-control": "no-cache"})
    await response.prepare(request)
    return SSE(response, delay_ms)


# --- the server ------------------------------------------------------------------------------------------

Handler = Callable[[web.Request, Json, Directives], Awaitable[web.StreamResponse]]


class MockLLM:
    """The aiohttp application and its journal of received requests."""

    def __init__(self, journal_size: int = JOURNAL_SIZE) -> None:
        self.journal: deque[Json] = deque(maxlen=journal_size)
        self.routes: dict[tuple[str, str], Handler] = {
            ("POST", "/v1/chat/completions"): self.chat_completions,
            ("POST", "/v1/embeddings"): self.embeddings,
            ("POST", "/v1/messages"): self.anthropic_messages,
        }

    def app(self) -> web.Application:
        app = web.Application(client_max_size=32 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        return app

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        try:
            directives, api_path = parse_directives(request.path, request.headers)
        except DirectiveError as exc:
            return openai_error(400, f"mock: {exc}", "invalid_request_error")

        if api_path == "/__mock__/requests":
            if request.method == "DELETE":
                self.journal.clear()
                return _json({"cleared": True})
            return _json({"requests": list(self.journal)})
        if request.method == "GET" and api_path == "/v1/models":
            return self.models()

        handler = self.routes.get((request.method, api_path))
        if handler is None:
            return openai_error(404, f"mock: no route for {request.method} {api_path}", "invalid_request_error")

        raw = await request.read()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = None
        entry = {
            "method": request.method,
            "path": request.path,
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "body": body if body is not None else raw.decode(errors="replace"),
            "received_at": time.time(),
            "outcome": "pending",  # then "answered", or "cancelled" when the caller hung up first
        }
        self.journal.append(entry)
        if not isinstance(body, dict):
            return openai_error(400, "mock: the request body must be a JSON object", "invalid_request_error")

        if directives.latency_ms:
            await asyncio.sleep(directives.latency_ms / 1000)
        if directives.fail:
            fault = await self.fault(request, directives.fail, anthropic=api_path == "/v1/messages")
            if fault is not None:
                return fault
        try:
            response = await handler(request, body, directives)
        except (asyncio.CancelledError, ConnectionResetError):
            entry["outcome"] = "cancelled"
            raise
        entry["outcome"] = "answered"
        return response

    async def fault(self, request: web.Request, kind: str, *, anthropic: bool) -> web.StreamResponse | None:
        if kind == "timeout":
            await asyncio.sleep(TIMEOUT_FAULT_SECONDS)
            return openai_error(504, "mock: injected timeout elapsed", "server_error")
        if kind == "reset":
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError  # nothing more can be written to an aborted connection
        if kind == "badjson":
            return web.Response(body=b'{"id": "broken", "choices": [', content_type="application/json")
        if anthropic:
            status, message, type_ = _ANTHROPIC_FAULTS[kind]
            return anthropic_error(status, message, type_)
        status, message, type_, code = _OPENAI_FAULTS[kind]
        return openai_error(status, message, type_, code)

    def models(self) -> web.Response:
        created = 1_700_000_000
        data = [{"id": m, "object": "model", "created": created, "owned_by": "mock"} for m in MODELS]
        return _json({"object": "list", "data": data})

    async def chat_completions(self, request: web.Request, body: Json, d: Directives) -> web.StreamResponse:
        messages = body.get("messages")
        if not isinstance(body.get("model"), str) or not isinstance(messages, list) or not messages:
            return openai_error(
                400, "mock: 'model' and a non-empty 'messages' list are required", "invalid_request_error"
            )
        reply, truncated = _reply_for(messages, d), False
        limit = _max_tokens(body, "max_completion_tokens", "max_tokens")
        if limit is not None:
            reply, truncated = truncate_to_tokens(reply, limit)
        finish_reason = "length" if truncated else "stop"
        prompt_tokens, completion_tokens = _prompt_tokens(messages), count_tokens(reply)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        base = {"id": f"chatcmpl-mock-{next(_ids)}", "created": int(time.time()), "model": body["model"]}

        if not body.get("stream"):
            message = {"role": "assistant", "content": reply, "refusal": None}
            choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
            return _json(
                {
                    **base,
                    "object": "chat.completion",
                    "choices": [choice],
                    "usage": usage,
                    "system_fingerprint": "mock",
                }
            )

        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        chunk = {**base, "object": "chat.completion.chunk", "system_fingerprint": "mock"}
        if include_usage:
            chunk["usage"] = None
        sse = await _open_stream(request, d.stream_delay_ms)

        def delta(content: Json, finish: str | None = None) -> Json:
            return {
                **chunk,
                "choices": [{"index": 0, "delta": content, "logprobs": None, "finish_reason": finish}],
            }

        await sse.send(delta({"role": "assistant", "content": ""}))
        for piece in _PIECE.findall(reply):
            await sse.send(delta({"content": piece}))
        await sse.send(delta({}, finish_reason))
        if include_usage:
            await sse.send({**chunk, "choices": [], "usage": usage})
        await sse.send("[DONE]")
        await sse.response.write_eof()
        return sse.response

    async def embeddings(self, request: web.Request, body: Json, d: Directives) -> web.StreamResponse:
        raw_input = body.get("input")
        if isinstance(raw_input, str):
            texts = [raw_input]
        elif isinstance(raw_input, list) and raw_input and all(isinstance(t, str) for t in raw_input):
            texts = raw_input
        elif isinstance(raw_input, list) and raw_input and all(isinstance(t, int) for t in raw_input):
            texts = [" ".join(map(str, raw_input))]  # one pre-tokenized input
        elif isinstance(raw_input, list) and raw_input and all(isinstance(t, list) for t in raw_input):
            texts = [" ".join(map(str, t)) for t in raw_input]
        else:
            return openai_error(400, "mock: 'input' must be a string or a non-empty list", "invalid_request_error")
        dimensions = body.get("dimensions") or DEFAULT_EMBEDDING_DIMENSIONS
        if not isinstance(dimensions, int) or not 1 <= dimensions <= 4096:
            return openai_error(400, "mock: 'dimensions' must be between 1 and 4096", "invalid_request_error")
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for index, text in enumerate(texts):
            vector = _embedding(text, dimensions)
            encoded: Any = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode() if as_base64 else vector
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        tokens = sum(count_tokens(t) for t in texts)
        return _json(
            {
                "object": "list",
                "data": data,
                "model": body.get("model", ""),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def anthropic_messages(self, request: web.Request, body: Json, d: Directives) -> web.StreamResponse:
        messages = body.get("messages")
        limit = _max_tokens(body, "max_tokens")
        if not isinstance(body.get("model"), str) or not isinstance(messages, list) or not messages:
            return anthropic_error(
                400, "messages: 'model' and a non-empty 'messages' list are required", "invalid_request_error"
            )
        if limit is None:
            return anthropic_error(400, "max_tokens: Field required", "invalid_request_error")
        reply, truncated = truncate_to_tokens(_reply_for(messages, d), limit)
        stop_reason = "max_tokens" if truncated else "end_turn"
        input_tokens, output_tokens = _prompt_tokens(messages, body.get("system")), count_tokens(reply)
        message = {
            "id": f"msg_mock_{next(_ids)}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "stop_sequence": None,
        }
        if not body.get("stream"):
            return _json(
                {
                    **message,
                    "content": [{"type": "text", "text": reply}],
                    "stop_reason": stop_reason,
                    "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
                }
            )
        sse = await _open_stream(request, d.stream_delay_ms)
        start = {
            **message,
            "content": [],
            "stop_reason": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": 1},
        }
        await sse.send({"type": "message_start", "message": start}, "message_start")
        await sse.send(
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            "content_block_start",
        )
        await sse.send({"type": "ping"}, "ping")
        for piece in _PIECE.findall(reply):
            await sse.send(
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}},
                "content_block_delta",
            )
        await sse.send({"type": "content_block_stop", "index": 0}, "content_block_stop")
        await sse.send(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": output_tokens},
            },
            "message_delta",
        )
        await sse.send({"type": "message_stop"}, "message_stop")
        await sse.response.write_eof()
        return sse.response


class MockLLMServer:
    """The mock on its own event loop in a background thread, on a free loopback port (for tests).

    Use as a context manager; ``url`` is the base URL (no trailing slash, no /v1) and ``journal`` the requests
    it received.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port
        self.mock = MockLLM()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="mock-llm", daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def journal(self) -> deque[Json]:
        return self.mock.journal

    def start(self) -> MockLLMServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    async def _start(self) -> None:
        self._runner = web.AppRunner(self.mock.app(), access_log=None, shutdown_timeout=0.5, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.base_events.Server)
        self.port = server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        # Requests still held (a "timeout" fault) are cancelled rather than left pending on a closed loop.
        pending = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def __enter__(self) -> MockLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _serve(host: str, port: int, reuse_port: bool) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        loop = None
    else:
        loop = uvloop.new_event_loop()
    web.run_app(
        MockLLM().app(),
        host=host,
        port=port,
        access_log=None,
        print=None,
        shutdown_timeout=1.0,
        handler_cancellation=True,  # a client that hangs up frees its held request (timeout fault)
        reuse_port=reuse_port,
        loop=loop,
    )


def run(host: str = "127.0.0.1", port: int = 9100, workers: int = 1) -> None:
    """Serve in the foreground until interrupted (``manage.py mock_llm``).

    ``workers`` > 1 runs that many processes on one port (SO_REUSEPORT), for benchmarks that must not be
    limited by the mock; each process keeps its own journal, so tests use one worker.
    """
    print(f"mock LLM upstream on http://{host}:{port} ({workers} worker{'s' if workers > 1 else ''})", flush=True)
    if workers == 1:
        _serve(host, port, reuse_port=False)
        return
    processes = [multiprocessing.Process(target=_serve, args=(host, port, True), daemon=True) for _ in range(workers)]
    for process in processes:
        process.start()

    def _interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops the workers too, not only this parent
    try:
        for process in processes:
            process.join()
    except KeyboardInterrupt:
        pass
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.join(timeout=5)
