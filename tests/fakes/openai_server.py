"""A fake OpenAI chat-completions server on loopback, in both URL forms, with scripted behaviour.

It answers `POST /v1/chat/completions` (OpenAI and compatible servers) and Azure's
`POST /openai/deployments/{deployment}/chat/completions?api-version=...`, whole or streamed as
server-sent events (`"stream": true`, paced by a latency profile: first token, tokens per second).
Each request takes the next scripted behaviour (an answer, tool calls, a 429 with Retry-After, a
500, a slow answer, a stream that breaks off, Azure's content-filter refusal of a prompt or of a
reply); with the script empty it answers with the default content. Every request is recorded
(path, query, headers, body) so tests can check what the SDK sent. Bodies follow what the `openai`
SDK parses: `ChatCompletion` (or its chunks) for answers and `{"error": {...}}` for errors (the SDK
reads `error.code`, and `Retry-After` for its back-off).

Embeddings too: `POST /v1/embeddings` and `POST /openai/deployments/{deployment}/embeddings`, one
deterministic vector per input (a hashed bag of words, unit length, `embedding_dimensions` long), as
floats or, when asked with `encoding_format: base64` (the `openai` SDK's default), as base64 float32.
Embedding requests are recorded in `embedding_requests` and take their own script
(`script_embeddings`: a 429, a 500 or a 401 for the next requests), not the chat script.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import math
import re
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.loopback import LoopbackFake


@dataclass(frozen=True)
class Answer:
    content: str


@dataclass(frozen=True)
class CallsTools:
    """An answer that asks for tool calls: (function name, arguments) pairs, `finish_reason: tool_calls`."""

    calls: tuple[tuple[str, dict[str, Any]], ...]


@dataclass(frozen=True)
class BreaksMidStream:
    """Starts streaming `content`, then drops the connection after a few tokens."""

    content: str


@dataclass(frozen=True)
class RateLimited:
    retry_after_seconds: int = 0


@dataclass(frozen=True)
class ServerError:
    pass


@dataclass(frozen=True)
class Slow:
    """Answers only after `seconds`: longer than the client's timeout, it is a timeout."""

    seconds: float
    content: str = "{}"


@dataclass(frozen=True)
class ContentFilter:
    """Azure's refusal of a prompt its content filter flagged (HTTP 400, code `content_filter`)."""


@dataclass(frozen=True)
class FilteredReply:
    """A reply the content filter withheld: HTTP 200, no content, `finish_reason: content_filter`."""


@dataclass(frozen=True)
class Unauthorized:
    """Azure's answer to a wrong key (HTTP 401)."""


Behaviour = (
    Answer
    | CallsTools
    | BreaksMidStream
    | RateLimited
    | ServerError
    | Slow
    | ContentFilter
    | FilteredReply
    | Unauthorized
)

EmbeddingsFailure = RateLimited | ServerError | Unauthorized

CONTENT_FILTER_BODY: dict[str, Any] = {
    "error": {
        "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management "
        "policy. Please modify your prompt and retry. To learn more about our content filtering policies "
        "please read our documentation: https://go.microsoft.com/fwlink/?linkid=2198766",
        "type": None,
        "param": "prompt",
        "code": "content_filter",
        "status": 400,
        "innererror": {
            "code": "ResponsibleAIPolicyViolation",
            "content_filter_result": {
                "hate": {"filtered": False, "severity": "safe"},
                "jailbreak": {"filtered": True, "detected": True},
                "self_harm": {"filtered": False, "severity": "safe"},
                "sexual": {"filtered": False, "severity": "safe"},
                "violence": {"filtered": False, "severity": "safe"},
            },
        },
    }
}


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class FakeOpenAIServer(LoopbackFake):
    """Start with `with FakeOpenAIServer() as server:`; `server.url` is its origin."""

    _thread_name = "fake-openai"

    default_content: str = '{"intent": "question", "text": "Hello from the fake model."}'
    first_token_seconds: float = 0.0
    """Latency profile of streamed answers: the wait before the first token, then tokens per second (0: unpaced)."""
    tokens_per_second: float = 0.0
    embedding_dimensions: int = 64
    requests: list[RecordedRequest] = field(default_factory=list)
    streams_finished_at: list[float] = field(default_factory=list)
    """When each streamed answer sent its last token (Unix seconds), in order."""
    embedding_requests: list[RecordedRequest] = field(default_factory=list)
    _script: deque[Behaviour] = field(default_factory=deque)
    _embeddings_script: deque[EmbeddingsFailure] = field(default_factory=deque)
    _ids: itertools.count[int] = field(default_factory=itertools.count)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def script(self, *behaviours: Behaviour) -> None:
        """The next requests' behaviours, in order; afterwards the default answer."""
        with self._lock:
            self._script.extend(behaviours)

    def script_embeddings(self, *failures: EmbeddingsFailure) -> None:
        """The next embedding requests' failures, in order; afterwards vectors again."""
        with self._lock:
            self._embeddings_script.extend(failures)

    def _application(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat_completions)
        app.router.add_post("/openai/deployments/{deployment}/chat/completions", self._chat_completions)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_post("/openai/deployments/{deployment}/embeddings", self._embeddings)
        return app

    def _next(self) -> Behaviour:
        with self._lock:
            return self._script.popleft() if self._script else Answer(self.default_content)

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(RecordedRequest(request.path, dict(request.query), dict(request.headers), body))
        if request.match_info.get("deployment") and "api-version" not in request.query:
            return _error(404, {"error": {"code": "404", "message": "Resource not found"}})
        behaviour = self._next()
        streaming = bool(body.get("stream"))
        match behaviour:
            case Answer(content) if streaming:
                return await self._stream(request, body, self._completion(body, content))
            case CallsTools(calls) if streaming:
                return await self._stream(request, body, self._tool_calls(body, calls))
            case Slow(seconds, content) if streaming:
                await asyncio.sleep(seconds)
                return await self._stream(request, body, self._completion(body, content))
            case FilteredReply() if streaming:
                return await self._stream(request, body, self._completion(body, "", finish_reason="content_filter"))
            case BreaksMidStream(content):
                return await self._stream(request, body, self._completion(body, content), break_after=3)
            case Answer(content):
                await self._generating(content)
                return web.json_response(self._completion(body, content))
            case CallsTools(calls):
                await self._generating("")
                return web.json_response(self._tool_calls(body, calls))
            case RateLimited(seconds):
                message = f"Requests have exceeded the rate limit. Please retry after {seconds} seconds."
                return _error(429, {"error": {"code": "429", "message": message}}, {"Retry-After": str(seconds)})
            case ServerError():
                message = "The server had an error while processing your request. Sorry about that!"
                return _error(500, {"error": {"message": message, "type": "server_error", "param": None, "code": None}})
            case Slow(seconds, content):
                await asyncio.sleep(seconds)
                return web.json_response(self._completion(body, content))
            case ContentFilter():
                return _error(400, CONTENT_FILTER_BODY)
            case Unauthorized():
                message = (
                    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a "
                    "valid key for an active subscription and use a correct regional API endpoint for your resource."
                )
                return _error(401, {"error": {"code": "401", "message": message}})
            case FilteredReply():
                return web.json_response(self._completion(body, "", finish_reason="content_filter"))

    async def _generating(self, content: str) -> None:
        """A whole answer takes as long as streaming it would: the first token, then every other."""
        tokens = len(re.findall(r"\s*\S+", content))
        await asyncio.sleep(
            self.first_token_seconds + (tokens / self.tokens_per_second if self.tokens_per_second else 0)
        )

    async def _stream(
        self, request: web.Request, body: dict[str, Any], completion: dict[str, Any], break_after: int | None = None
    ) -> web.StreamResponse:
        """The completion as server-sent events, as the OpenAI API streams it: a chunk per token (paced by
        the latency profile), the finish reason, the usage when `stream_options.include_usage` asks, [DONE].
        `break_after` drops the connection after that many tokens."""
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        choice = completion["choices"][0]
        message = choice["message"]

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            event = {
                "id": completion["id"],
                "object": "chat.completion.chunk",
                "created": completion["created"],
                "model": completion["model"],
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
            }
            return f"data: {json.dumps(event)}\n\n".encode()

        await asyncio.sleep(self.first_token_seconds)
        await response.write(chunk({"role": "assistant", "content": ""}))
        for sent, token in enumerate(re.findall(r"\s*\S+", message.get("content") or "")):
            if break_after is not None and sent == break_after:
                assert request.transport is not None
                request.transport.close()
                return response
            await response.write(chunk({"content": token}))
            if self.tokens_per_second:
                await asyncio.sleep(1 / self.tokens_per_second)
        if message.get("tool_calls"):
            calls = [{"index": i, **call} for i, call in enumerate(message["tool_calls"])]
            await response.write(chunk({"tool_calls": calls}))
        self.streams_finished_at.append(time.time())
        await response.write(chunk({}, choice["finish_reason"]))
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = {"id": completion["id"], "object": "chat.completion.chunk", "created": completion["created"]}
            usage |= {"model": completion["model"], "choices": [], "usage": completion["usage"]}
            await response.write(f"data: {json.dumps(usage)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def _embeddings(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.embedding_requests.append(RecordedRequest(request.path, dict(request.query), dict(request.headers), body))
        if request.match_info.get("deployment") and "api-version" not in request.query:
            return _error(404, {"error": {"code": "404", "message": "Resource not found"}})
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else inputs
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            message = "'input' must be a string or a non-empty array of strings (the fake takes no token arrays)"
            return _error(400, {"error": {"message": message, "type": "invalid_request_error", "code": None}})
        with self._lock:
            failure = self._embeddings_script.popleft() if self._embeddings_script else None
        if failure is not None:
            return _embeddings_failure(failure)
        vectors = [bag_of_words_vector(t, self.embedding_dimensions) for t in texts]
        as_base64 = body.get("encoding_format") == "base64"
        tokens = sum(len(t.split()) for t in texts)
        return web.json_response(
            {
                "object": "list",
                "data": [
                    {
                        "object": "embedding",
                        "index": i,
                        "embedding": base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode() if as_base64 else v,
                    }
                    for i, v in enumerate(vectors)
                ],
                "model": body.get("model", "fake-embeddings"),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    def _completion(self, body: dict[str, Any], content: str, finish_reason: str = "stop") -> dict[str, Any]:
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
        completion_tokens = len(content.split())
        return {
            "id": f"chatcmpl-fake-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": None},
                    "logprobs": None,
                    "finish_reason": finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    def _tool_calls(self, body: dict[str, Any], calls: tuple[tuple[str, dict[str, Any]], ...]) -> dict[str, Any]:
        answer = self._completion(body, "", finish_reason="tool_calls")
        answer["choices"][0]["message"] = {
            "role": "assistant",
            "content": None,
            "refusal": None,
            "tool_calls": [
                {
                    "id": f"call_fake_{next(self._ids)}",
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(arguments)},
                }
                for name, arguments in calls
            ],
        }
        answer["usage"]["completion_tokens"] = sum(len(json.dumps(a).split()) for _, a in calls)
        answer["usage"]["total_tokens"] = answer["usage"]["prompt_tokens"] + answer["usage"]["completion_tokens"]
        return answer


def bag_of_words_vector(text: str, dimensions: int) -> list[float]:
    """Each lowercase word adds 1 at a position its hash picks: texts sharing words point the same way."""
    vector = [0.0] * dimensions
    for word in re.findall(r"\w+", text.lower()):
        vector[int.from_bytes(hashlib.sha256(word.encode()).digest()[:4], "big") % dimensions] += 1.0
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector] if norm else vector


def _embeddings_failure(failure: EmbeddingsFailure) -> web.Response:
    """The same error answers the chat endpoints give."""
    match failure:
        case RateLimited(seconds):
            message = f"Requests have exceeded the rate limit. Please retry after {seconds} seconds."
            return _error(429, {"error": {"code": "429", "message": message}}, {"Retry-After": str(seconds)})
        case ServerError():
            message = "The server had an error while processing your request. Sorry about that!"
            return _error(500, {"error": {"message": message, "type": "server_error", "param": None, "code": None}})
        case Unauthorized():
            return _error(401, {"error": {"code": "401", "message": "Access denied due to invalid subscription key."}})


def _error(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type="application/json", headers=headers)
