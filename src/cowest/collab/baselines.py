"""The paper's non-collaborative baselines: SuperICL-style prompting and BM25 retrieval."""

from __future__ import annotations

import math
from typing import Sequence

from ..models.base import Backend
from ..tasks.base import LETTERS, Example
from .prompter import Prompter


def answer_prefix(draft: str) -> str:
    """The draft up to and including its last 'Answer:' (appended when the draft has none)."""
    head, sep, _ = draft.rpartition("Answer:")
    return f"{head}{sep}" if sep else f"{draft.rstrip()}\nAnswer:"


def weak_predictions(
    weak: Backend, prompter: Prompter, examples: Sequence[Example], drafts: Sequence[str]
) -> list[tuple[str, float]]:
    """The weak model's answer and its probability, read from the answer-token distribution after its draft.

    Multiple choice and classification: the most probable option letter / label, with its probability
    renormalised over the options. Short answer: the draft's answer with its per-token geometric mean probability.
    """
    if not hasattr(weak, "logprobs_of_options"):
        raise ValueError("supericl needs answer-token probabilities: use a local weak model (weak.backend: hf)")
    tt = prompter.task_type
    convs = [prompter.draft_prompt(e) for e in examples]
    prefixes = [answer_prefix(d) for d in drafts]
    out: list[tuple[str, float]] = [("", 0.0)] * len(examples)
    # Group by option set: one batched forward pass per distinct set of answer strings.
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, e in enumerate(examples):
        groups.setdefault(_answer_strings(tt.name, e, drafts[i]), []).append(i)
    for opts, idx in groups.items():
        if not opts:
            continue
        lps = weak.logprobs_of_options([convs[i] for i in idx], [f" {o}" for o in opts], [prefixes[i] for i in idx])
        for i, lp in zip(idx, lps):
            if tt.name == "short_answer":
                ntok = max(len(weak.tokenizer(f" {opts[0]}", add_special_tokens=False)["input_ids"]), 1)
                out[i] = (opts[0], math.exp(lp[0] / ntok))
            else:
                z = max(lp)
                probs = [math.exp(v - z) for v in lp]
                best = max(range(len(opts)), key=lambda j: probs[j])
                out[i] = (_shown(tt.name, examples[i], opts[best]), probs[best] / sum(probs))
    return out


def _answer_strings(task_type: str, example: Example, draft: str) -> tuple[str, ...]:
    """What can follow 'Answer:': option letters, labels, or the draft's own short answer."""
    if task_type == "multiple_choice":
        return tuple(LETTERS[: len(example.options or [])])
    if task_type == "classification":
        return tuple(example.options or [])
    answer = draft.rpartition("Answer:")[2].strip().splitlines()
    return (answer[0].strip(),) if answer and answer[0].strip() else ()


def _shown(task_type: str, example: Example, answer: str) -> str:
    """The prediction as the strong model sees it: 'C) option text' for a letter."""
    if task_type == "multiple_choice":
        return f"{answer}) {(example.options or [])[LETTERS.index(answer)]}"
    return answer


class BM25Retriever:
    """Top-k passages of a corpus by BM25 (the bm25s library)."""

    def __init__(self, corpus: Sequence[str]):
        import bm25s

        if not corpus:
            raise ValueError("the retrieval baseline needs a corpus, and this task has none")
        self.corpus = list(corpus)
        self.index = bm25s.BM25()
        self.index.index(bm25s.tokenize(self.corpus, stopwords="en", show_progress=False), show_progress=False)

    def top_k(self, queries: Sequence[str], k: int) -> list[list[str]]:
        """The k best passages per query, best first."""
        return [[p for p, _ in hits] for hits in self.search(queries, k)]

    def search(self, queries: Sequence[str], k: int) -> list[list[tuple[str, float]]]:
        """The k best (passage, BM25 score) per query, best first."""
        import bm25s

        k = min(k, len(self.corpus))
        tokens = bm25s.tokenize(list(queries), stopwords="en", return_ids=False, show_progress=False)
        docs, scores = self.index.retrieve(tokens, k=k, show_progress=False)
        return [[(self.corpus[int(j)], float(x)) for j, x in zip(row, srow)] for row, srow in zip(docs, scores)]
