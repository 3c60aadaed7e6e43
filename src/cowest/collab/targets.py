"""SFT rows whose draft targets carry knowledge: a background from the data wherever the data has one.

The background of an example's target is, in order: its own (metadata 'background' or its explanation), its
evidence passages (metadata 'context', as IfQA has), the task's facts retrieved for the question and its answer
with BM25 (`task.corpus_path`), and only then a templated sentence that states the answer and no fact. A weak
model trained on that template learns to assert answers without knowledge, which the strong model then copies, so
the stage warns how many rows got it.
"""

from __future__ import annotations

import logging
import random
import re
from collections import Counter
from typing import Sequence

from ..tasks.base import Example, TaskData
from .baselines import BM25Retriever
from .prompter import Prompter
from .prompts import SECTIONS

log = logging.getLogger(__name__)

FACTS_PER_TARGET = 2  # a question usually needs one fact of its entity, a reasoning question two
RELATIVE_SCORE = 0.3  # a further fact is kept when its BM25 score is at least this share of the best one's
CANDIDATES = 3  # runners-up looked at beyond `FACTS_PER_TARGET`, so a later one about the same thing can be found
EVIDENCE_WORDS = 60  # a background is one line of a short draft: longer evidence is cut at a sentence end
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def evidence_background(example: Example, max_words: int = EVIDENCE_WORDS) -> str | None:
    """The leading sentences of the example's evidence passages (metadata 'context'), within `max_words`."""
    ctx = example.metadata.get("context")
    passages = ctx if isinstance(ctx, list) else [ctx] if ctx else []
    kept: list[str] = []
    words = 0
    for passage in passages:
        for sentence in _SENTENCE_END.split(" ".join(str(passage).split())):
            n = len(sentence.split())
            if kept and words + n > max_words:
                return " ".join(kept)
            kept.append(sentence)
            words += n
    return " ".join(kept) or None


def fact_backgrounds(prompter: Prompter, examples: Sequence[Example], facts: Sequence[str],
                     k: int = FACTS_PER_TARGET) -> list[str | None]:
    """The facts BM25 ranks best for each example's question and gold answer, at most `k` (None when none matches).

    A further fact joins the best one only when it is about the same thing or adds the other half of the question:
    of the question's rare words (in at most a quarter of the facts: a name, a code, a place), it holds all that the
    best fact holds (the same route's other fact), or only others (the rule beside the part it applies to). A
    runner-up that holds some of the best fact's rare words but not all is another entity's fact that shares only
    common words with the question ("maximum daily dose of" another drug): noise, not knowledge. It must also score
    at least `RELATIVE_SCORE` of the best, and the background stay one short line.
    """
    if not facts or not examples:
        return [None] * len(examples)
    tt = prompter.task_type
    queries = [f"{e.question} {tt.format_answer(e)}" for e in examples]
    hits = BM25Retriever(facts).search(queries, k + CANDIDATES)
    seen_in = Counter(w for f in facts for w in set(_words(f)))
    rare_df = max(2, len(facts) // 4)
    out: list[str | None] = []
    for e, row in zip(examples, hits):
        rare = {w for w in _words(e.question) if 0 < seen_in[w] <= rare_df}
        kept: list[str] = []
        for p, score in row:
            if len(kept) == k or score <= 0 or score < RELATIVE_SCORE * row[0][1]:
                continue
            if kept:
                best, mine = rare & set(_words(kept[0])), rare & set(_words(p))
                same = bool(best) and best <= mine  # nothing identifies the best fact: no sibling of it either
                other_half = bool(mine) and not mine & best
                if not (same or other_half) or len(" ".join([*kept, p]).split()) > EVIDENCE_WORDS:
                    continue
            kept.append(p)
        out.append(" ".join(kept) or None)
    return out


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+(?:-[a-z0-9]+)*", text.lower())


def knowledge_backgrounds(prompter: Prompter, examples: Sequence[Example], facts: Sequence[str]) -> list[str | None]:
    """Per example, the background its SFT target should state beyond its own (None: its own, or the template)."""
    if "Background" not in SECTIONS[prompter.draft_format]:
        return [None] * len(examples)
    own = [bool(e.metadata.get("background") or e.explanation) for e in examples]
    out: list[str | None] = [None if has else evidence_background(e) for e, has in zip(examples, own)]
    need = [i for i, b in enumerate(out) if b is None and not own[i]]
    for i, b in zip(need, fact_backgrounds(prompter, [examples[i] for i in need], facts)):
        out[i] = b
    return out


def sft_rows(prompter: Prompter, examples: Sequence[Example], facts: Sequence[str] = (),
             what: str = "SFT") -> tuple[list[dict], int]:
    """SFT rows (TRL prompt-completion) with knowledge-carrying backgrounds, and how many fell back to the template
    (warned in the log)."""
    backgrounds = knowledge_backgrounds(prompter, examples, facts)
    templated = 0
    if "Background" in SECTIONS[prompter.draft_format]:
        templated = sum(b is None and not (e.metadata.get("background") or e.explanation)
                        for e, b in zip(examples, backgrounds))
    if templated:
        log.warning(
            "%s: %d of %d targets have no explanation, evidence or matching fact, so their Background only restates "
            "the answer ('The relevant fact is that the answer ... is X'); give the data an explanation column or a "
            "fact corpus (task.corpus_path)", what, templated, len(examples))
    return [prompter.sft_row(e, b) for e, b in zip(examples, backgrounds)], templated


def corpus_rows(prompter: Prompter, passages: Sequence[str], repeats: int, seed: int = 0,
                max_words: int = EVIDENCE_WORDS) -> list[dict]:
    """SFT rows that teach the corpus itself, each passage `repeats` times: every repeat in a fresh seeded order,
    consecutive passages packed into one row up to `max_words` (a long passage alone), so that the chat template's
    fixed tokens are paid once per row rather than once per fact."""
    rows: list[dict] = []
    for r in range(repeats):
        order = list(passages)
        random.Random(f"corpus:{seed}:{r}").shuffle(order)
        chunk: list[str] = []
        for p in order:
            if chunk and len(" ".join([*chunk, p]).split()) > max_words:
                rows.append(prompter.corpus_row("\n".join(chunk)))
                chunk = []
            chunk.append(" ".join(p.split()))
        if chunk:
            rows.append(prompter.corpus_row("\n".join(chunk)))
    return rows


def rehearsal_rows(prompter: Prompter, examples: Sequence[Example], task: TaskData, n: int,
                   seed: int = 0) -> list[dict]:
    """`n` DPO pairs whose chosen and rejected drafts are both an SFT target (of `examples`, or the task's corpus
    taught once), a seeded sample: only the SFT term of the DPO loss learns from them (`dpo_rehearsal`)."""
    if n < 1:
        return []
    pool = sft_rows(prompter, examples, task.facts, "DPO rehearsal")[0] + corpus_rows(prompter, task.corpus, 1, seed)
    rng = random.Random(f"rehearsal:{seed}")
    picked = rng.sample(pool, n) if n <= len(pool) else [rng.choice(pool) for _ in range(n)]
    return [{"prompt": row["prompt"], "chosen": row["completion"], "rejected": row["completion"]} for row in picked]
