"""The OpenAI chat-completions wire format as the server speaks it: the request schema, the limits a request must
meet, the question it carries, response bodies and error bodies."""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import CowestError
from ..tasks.base import LETTERS

MAX_SEED = 2**31 - 1  # every backend takes it: llama.cpp's seed is 32-bit, torch's and OpenAI's wider
MAX_NAME_CHARS = 256  # a model name, a stop string, an option: well above any real one
MAX_STOPS = 4  # as OpenAI


class APIError(CowestError):
    """A request that ends in an OpenAI-style error body with this HTTP status."""

    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type_, param, code
        self.headers = headers or {}

    def body(self) -> dict:
        """The error as OpenAI's clients expect it."""
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


@dataclass(frozen=True)
class Limits:
    """What one request may ask for; over a limit is a 413 (body) or a 400 (the rest) naming the limit."""

    max_body_bytes: int = 1_000_000
    max_messages: int = 64
    max_prompt_chars: int = 8_000  # the question (the last user message) and its options
    max_tokens: int = 1024
    max_n: int = 4
    max_in_flight: int = 64  # requests admitted at once; more get 429
    rate_per_min: int = 600  # requests one key (or, without keys, every client together) may make a minute; 0: any
    deadline_s: float = 120.0  # one request, from admission to its answer
    batch_window_s: float = 0.02  # how long the first draft of a batch waits for company
    max_batch: int = 16  # drafts per weak call


class ChatMessage(BaseModel):
    """One chat message; content may be text or OpenAI's list of text parts."""

    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        """The message's text (text parts joined)."""
        if isinstance(self.content, list):
            return "".join(str(p.get("text", "")) for p in self.content if p.get("type") == "text")
        return self.content or ""


class StreamOptions(BaseModel):
    """`stream_options`: whether the last chunk carries usage."""

    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


Stop = Annotated[str, Field(min_length=1, max_length=MAX_NAME_CHARS)]
Option = Annotated[str, Field(min_length=1)]  # their length counts towards the question's limit


class ChatRequest(BaseModel):
    """The fields of a chat-completions request the server honours; other OpenAI fields are accepted and ignored."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(max_length=MAX_NAME_CHARS)
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    n: int = Field(1, ge=1)
    seed: int | None = Field(None, ge=0, le=MAX_SEED)
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: Stop | Annotated[list[Stop], Field(max_length=MAX_STOPS)] | None = None
    # cowest extension: the answer options of a multiple-choice question, lettered A to Z
    options: Annotated[list[Option], Field(min_length=2, max_length=len(LETTERS))] | None = None

    @property
    def token_cap(self) -> int | None:
        """The caller's cap on completion tokens, whichever name it used."""
        return self.max_completion_tokens or self.max_tokens

    @property
    def stops(self) -> tuple[str, ...]:
        """Stop strings as a tuple."""
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)


def parse_request(raw: bytes, limits: Limits) -> ChatRequest:
    """The request body as a ChatRequest within `limits`, or the 400 that says what is wrong."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise APIError(400, f"request body is not valid JSON: {e}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise APIError(400, "request body must be a JSON object", code="invalid_json")
    try:
        req = ChatRequest.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        # a union's branch names (`constrained-str`, `list[...]`) are not the client's
        param = ".".join(str(p) for p in err["loc"] if re.fullmatch(r"\w+", str(p))) or None
        raise APIError(400, f"{param}: {err['msg']}" if param else err["msg"], param=param) from None
    if len(req.messages) > limits.max_messages:
        raise APIError(400, f"{len(req.messages)} messages; this server takes at most {limits.max_messages}",
                       param="messages", code="too_many_messages")
    if req.token_cap is not None and req.token_cap > limits.max_tokens:
        param = "max_completion_tokens" if req.max_completion_tokens else "max_tokens"
        raise APIError(400, f"{param} {req.token_cap} is above this server's limit of {limits.max_tokens}",
                       param=param, code="max_tokens_too_large")
    if req.n > limits.max_n:
        raise APIError(400, f"n {req.n} is above this server's limit of {limits.max_n}", param="n")
    size = len(question_text(req)) + sum(len(o) for o in req.options or [])
    if size > limits.max_prompt_chars:
        raise APIError(400, f"the question is {size} characters; this server takes at most {limits.max_prompt_chars}",
                       param="messages", code="prompt_too_long")
    return req


def question_text(req: ChatRequest) -> str:
    """The last user message: the question the system answers."""
    for m in reversed(req.messages):
        if m.role == "user":
            if not m.text().strip():
                raise APIError(400, "the last user message is empty", param="messages")
            return m.text().strip()
    raise APIError(400, "no user message: the last user message is the question", param="messages")


_OPTION = re.compile(r"^\s*\(?([A-Z])[.)]\s+(\S.*)$")


def split_options(text: str) -> tuple[str, list[str] | None]:
    """A question whose last lines are options 'A. ...', 'B. ...' (in order from A) as (question, options)."""
    lines = text.rstrip().split("\n")
    k = len(lines)
    while k > 0 and _OPTION.match(lines[k - 1]):
        k -= 1
    tail = [_OPTION.match(ln) for ln in lines[k:]]
    letters = "".join(m.group(1) for m in tail if m)
    question = "\n".join(lines[:k]).strip()
    if len(tail) < 2 or letters != "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[: len(tail)] or not question:
        return text, None
    return question, [m.group(2).strip() for m in tail if m]


def completion_id() -> str:
    """A fresh chat-completion id."""
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def chat_completion(cid: str, model: str, contents: list[str], finish: list[str | None], usage: dict,
                    extra: dict) -> dict:
    """A chat.completion body with one choice per content, plus the `cowest` extra field."""
    choices = [{"index": i, "message": {"role": "assistant", "content": c}, "logprobs": None,
                "finish_reason": f or "stop"} for i, (c, f) in enumerate(zip(contents, finish))]
    return {"id": cid, "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": choices, "usage": usage, "cowest": extra}


def stream_chunks(body: dict, include_usage: bool, piece_chars: int = 64) -> list[str]:
    """A finished chat.completion body as server-sent events: a role chunk, content pieces and a finish chunk per
    choice, the usage chunk when asked, then [DONE]."""
    head = {"id": body["id"], "object": "chat.completion.chunk", "created": body["created"], "model": body["model"]}

    def event(choices: list[dict], **more: Any) -> str:
        return f"data: {json.dumps({**head, 'choices': choices, **more})}\n\n"

    out = []
    for ch in body["choices"]:
        i, text = ch["index"], ch["message"]["content"]
        first = {"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}
        out.append(event([first], cowest=body["cowest"]) if i == 0 else event([first]))
        for s in range(0, len(text), piece_chars):
            out.append(event([{"index": i, "delta": {"content": text[s:s + piece_chars]}, "logprobs": None,
                               "finish_reason": None}]))
        out.append(event([{"index": i, "delta": {}, "logprobs": None, "finish_reason": ch["finish_reason"]}]))
    if include_usage:
        out.append(event([], usage=body["usage"]))
    out.append("data: [DONE]\n\n")
    return out
