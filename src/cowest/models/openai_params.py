"""Which request parameters an OpenAI-compatible endpoint takes, learnt from its own 400 and remembered for the run.

OpenAI's reasoning models refuse `max_tokens` ("Use 'max_completion_tokens' instead") and sampling parameters other
than their defaults (`temperature`, `top_p`). Rather than a list of model names that goes stale, the first refusal
says which parameter it is (the error's `param`); from then on every request to that endpoint and model sends the
token cap as `max_completion_tokens`, or leaves the refused parameter out, so the model's default applies.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

REFUSAL_CODES = frozenset({"unsupported_parameter", "unsupported_value"})
# left out when refused: the model's default applies (`stop` is applied to the reply here anyway)
DROPPABLE = frozenset({"temperature", "top_p", "seed", "stop"})
_QUOTED = re.compile(r"'(\w+)'")


@dataclass
class EndpointParams:
    """What one endpoint and model was found to refuse: the name of the token cap, and the parameters left out."""

    token_param: str = "max_tokens"  # widest support: llama.cpp, vLLM and OpenAI's chat models
    dropped: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def build(self, params: dict[str, Any]) -> dict[str, Any]:
        """`params` (with the cap as `max_tokens`) as this endpoint takes them."""
        with self.lock:
            out = {k: v for k, v in params.items() if k not in self.dropped}
            if self.token_param != "max_tokens" and "max_tokens" in out:
                out[self.token_param] = out.pop("max_tokens")
        return out

    def learn(self, exc: Exception, sent: dict[str, Any], where: str) -> bool:
        """Whether `exc` (a 400) refuses a parameter of `sent` that can be renamed or left out: then it is learnt, and
        the same call made again without it will be taken."""
        param = refused_param(exc)
        if param is None or param not in sent:
            return False
        with self.lock:
            if param == "max_tokens":
                new, self.token_param = self.token_param != "max_completion_tokens", "max_completion_tokens"
                what = "the token cap goes as max_completion_tokens"
            elif param in DROPPABLE:
                new = param not in self.dropped
                self.dropped.add(param)
                what = f"{param} is left out (the model's default applies)"
            else:
                return False
        if new:
            log.warning("%s refuses %s: from now on %s", where, param, what)
        return True


def refused_param(exc: Exception) -> str | None:
    """The parameter a 400 says the model does not support, if it says so."""
    body = getattr(exc, "body", None)
    message = str(body.get("message", "")) if isinstance(body, dict) else str(exc)
    code = getattr(exc, "code", None)
    if code not in REFUSAL_CODES and not message.lower().startswith("unsupported"):
        return None
    param = getattr(exc, "param", None)
    if not param:  # some gateways keep the message and drop the field
        found = _QUOTED.search(message)
        param = found.group(1) if found else None
    return param


_KNOWN: dict[str, EndpointParams] = {}
_KNOWN_LOCK = threading.Lock()


def for_endpoint(identity: str) -> EndpointParams:
    """The parameters learnt for one endpoint and model, shared by every backend on it in this process (a run closes
    and reopens its strong model around training; what it learnt stays)."""
    with _KNOWN_LOCK:
        return _KNOWN.setdefault(identity, EndpointParams())
