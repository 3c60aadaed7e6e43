"""OpenAI-evals samples files of lettered MCQs (us_tort_law, medmcqa, quartz, logiqa, moral_exceptqa)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ...config import TaskConfig
from ..base import LETTERS, Example, TaskData
from ..fields import field_error, mc_gold, short
from ..flow import SOURCE_KNOBS, RowParser, load_source
from ..readers import Loc, Row
from ..registry import LoaderInfo, described
from ..types import TYPES

_OPTION_LINE = re.compile(r"^\s*\(?([A-Za-z])\s*[).:]\s*(.*)$")
_SUBJECT = re.compile(r"^Subject:\s*(.+?)\s*$")
_UNLETTERED_MAX = 40  # characters: longer trailing lines are question text, not bare options


def parse_mcq_prompt(content: str, unlettered: bool = False) -> tuple[str | None, str, list[str]] | None:
    """(subject, question, options) from an evals user message ending in lettered options; None if it has none.

    With `unlettered`, a message without lettered options may end in short bare option lines instead
    (MoralExceptQA: "...acceptable?\nYes\nNo\nAnswer:").
    """
    lines = content.strip().split("\n")
    while lines and (not lines[-1].strip() or lines[-1].strip().lower() in ("answer:", "answer")):
        lines.pop()
    if unlettered and not (lines and _OPTION_LINE.match(lines[-1])):
        return _parse_unlettered(lines)
    options: list[str] = []
    i = len(lines) - 1
    # Walk up the trailing block of option lines; it must read A, B, C, ... top-down.
    while i >= 0 and (m := _OPTION_LINE.match(lines[i])):
        options.insert(0, m.group(2).strip())
        letter = m.group(1).upper()
        i -= 1
        if letter == "A":
            break
    expected = [_OPTION_LINE.match(ln).group(1).upper() for ln in lines[i + 1:]] if options else []
    if len(options) < 2 or expected != list(LETTERS[: len(options)]):
        return None
    for j, (letter, opt) in enumerate(zip(LETTERS, options)):  # LogiQA repeats the label: "A. A.Zhao ..."
        options[j] = re.sub(rf"^{letter}\.\s*", "", opt) if opt.startswith(f"{letter}.") else opt
    body = lines[: i + 1]
    subject = None
    if body and (m := _SUBJECT.match(body[0])):
        subject, body = m.group(1), body[1:]
    question = "\n".join(body).strip()
    if not question or not all(options):
        return None
    return subject, question, options


def _parse_unlettered(lines: list[str]) -> tuple[str | None, str, list[str]] | None:
    """Trailing run of 2-10 short lines as the options, the rest as the question."""
    i = len(lines)
    while i > 1 and 0 < len(lines[i - 1].strip()) <= _UNLETTERED_MAX and len(lines) - i < 10:
        i -= 1
    options = [ln.strip() for ln in lines[i:]]
    question = "\n".join(lines[:i]).strip()
    if len(options) < 2 or not question or len({o.casefold() for o in options}) != len(options):
        return None
    return None, question, options


def evals_row(prefix: str) -> RowParser:
    """A parser of evals samples rows (`input` chat messages, `ideal` answer); ids are `prefix-line`."""

    def parse(loc: Loc, row: Row) -> Example:
        messages = row.get("input")
        if isinstance(messages, str):
            content, system = messages, None
        elif isinstance(messages, list) and messages and all(isinstance(m, dict) for m in messages):
            users = [m for m in messages if m.get("role") == "user"]
            if not users or not isinstance(users[-1].get("content"), str):
                raise field_error(loc, "input", "no user message with text")
            content = users[-1]["content"]
            system = next((m.get("content") for m in messages if m.get("role") == "system"), None)
        else:
            raise field_error(loc, "input", f"expected a list of chat messages, got {short(messages)}")
        parsed = parse_mcq_prompt(content, unlettered=isinstance(row.get("ideal"), str) and len(row["ideal"]) > 1)
        if parsed is None:
            raise field_error(loc, "input", "no lettered options (a) ..., b) ... or A. ..., B. ...) at its end")
        subject, question, options = parsed
        ideal = row.get("ideal")
        if isinstance(ideal, list) and ideal:
            ideal = ideal[0]
        gold = mc_gold(ideal, options, loc, "ideal")
        meta: dict[str, Any] = {"source": str(loc)}
        if subject:
            meta["subject"] = subject
        if system:
            meta["system"] = system
        return Example(id=f"{prefix}-{loc.line}", question=question, options=options, gold=gold, metadata=meta)

    return parse


@described(LoaderInfo(
    summary="An OpenAI-evals samples file of lettered multiple-choice questions: task.path or a packaged asset.",
    knobs={**SOURCE_KNOBS, "task.options.asset": "a packaged data set: medmcqa, us_tort_law, moral_exceptqa"},
    notes=("Columns: input (chat messages whose last user message ends in lettered options), ideal (the answer).",),
))
def load_evals_mcq(cfg: TaskConfig) -> TaskData:
    """An OpenAI-evals samples file of lettered MCQs: task.path, or the packaged options.asset."""
    prefix = cfg.options.get("asset") or (Path(cfg.path).parent.name if cfg.path else "evals")
    return load_source(cfg, TYPES["multiple_choice"], evals_row(prefix), default_asset=cfg.options.get("asset"))
