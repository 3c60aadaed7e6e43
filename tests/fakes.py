"""A scripted in-process backend for fast unit tests of the method's logic (real backends are tested elsewhere)."""

from __future__ import annotations

from typing import Callable, Sequence

from cowest.models.base import Completion, Conversation, Sampling, Usage

Script = Callable[[Conversation, int, Sampling], str]


class ScriptedBackend:
    """Answers each conversation with `script(conversation, sample_index, sampling)`."""

    def __init__(self, script: Script, name: str = "scripted"):
        self.script, self.identity, self.usage = script, f"fake:{name}", Usage()
        self.requests: list[Conversation] = []
        self.closed = False

    def generate(self, conversations: Sequence[Conversation], n: int = 1, sampling: Sampling = Sampling()):
        out = []
        for conv in conversations:
            self.requests.append(conv)
            row = []
            for i in range(n):
                c = Completion(self.script(conv, i, sampling), prompt_tokens=10, completion_tokens=5)
                self.usage.add(c)
                row.append(c)
            out.append(row)
        return out

    def close(self) -> None:
        self.closed = True
