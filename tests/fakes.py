"""A scripted in-process backend for fast unit tests of the method's logic (real backends are tested elsewhere)."""

from __future__ import annotations

from typing import Callable, Sequence

from cowest.models.base import BaseBackend, Completion, Conversation, Sampling

Script = Callable[[Conversation, int, Sampling], str]


class ScriptedBackend(BaseBackend):
    """Answers each conversation with `script(conversation, sample_index, sampling)`."""

    def __init__(self, script: Script, name: str = "scripted", finish_reason: str | None = None):
        super().__init__()
        self.script, self.identity = script, f"fake:{name}"
        self.finish_reason = finish_reason  # "length": every reply hit the token cap
        self.requests: list[Conversation] = []
        self.closed = False

    def _generate(self, conversations: Sequence[Conversation], n: int, sampling: Sampling) -> list[list[Completion]]:
        out = []
        for conv in conversations:
            self.requests.append(conv)
            out.append([Completion(self.script(conv, i, sampling), prompt_tokens=10, completion_tokens=5,
                                   finish_reason=self.finish_reason) for i in range(n)])
        return out

    def close(self) -> None:
        self.closed = True
