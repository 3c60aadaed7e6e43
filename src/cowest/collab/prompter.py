"""Every prompt of the method, rendered from the templates (`prompts`) for one task type and draft format, and the
parts of a draft the method reads: the sections the strong model is shown, the answer line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from ..models.base import Conversation
from ..tasks.base import Example, TaskType
from .prompts import DRAFT_INSTRUCTIONS, SECTIONS, TEMPLATES


@dataclass
class Prompter:
    """Renders every prompt of the method from the templates, for one task type and draft format."""

    task_type: TaskType
    draft_format: str = "cot"
    overrides: Mapping[str, str] | None = None
    draft_sections: Sequence[str] | None = None  # what the strong model sees of a draft (None: all of it)

    def template(self, name: str) -> str:
        """A template by name, recipe overrides first."""
        if self.overrides and name in self.overrides:
            return self.overrides[name]
        if name.startswith("instruction_"):
            return DRAFT_INSTRUCTIONS[name.removeprefix("instruction_")]
        return TEMPLATES[name]

    def render(self, name: str, example: Example, **extra: str) -> str:
        """Fill one template for an example."""
        fields = dict(
            question=example.question,
            options=self.task_type.format_options(example),
            answer_hint=self.task_type.answer_hint,
        )
        fields.update(extra)
        template = self.template(name)
        if not fields["options"]:  # drop the options line for tasks without options
            template = "\n".join(ln for ln in template.split("\n") if ln.strip() != "{options}")
        return template.format(**fields)

    def draft_prompt(self, example: Example) -> Conversation:
        """The weak model's input; SFT, mining, DPO and inference all use this exact conversation."""
        instruction = self.template(f"instruction_{self.draft_format}").format(answer_hint=self.task_type.answer_hint)
        return [{"role": "user", "content": self.render("weak_draft", example, instruction=instruction)}]

    def draft_target(self, example: Example, background: str | None = None) -> str:
        """The SFT target: the gold answer in the draft format; its background is the example's own (metadata
        'background', else its explanation), else `background` (evidence or retrieved facts), else a template."""
        meta = example.metadata
        background = (meta.get("background") or example.explanation or background
                      or templated_background(self.task_type, example))
        reasoning = meta.get("reasoning") or (
            f"The facts above point to {self.task_type.format_answer(example)}."
        )
        parts = {"Background": background, "Reasoning": reasoning, "Answer": self.task_type.format_answer(example)}
        return "\n".join(f"{s}: {' '.join(str(parts[s]).split())}" for s in SECTIONS[self.draft_format])

    def sft_row(self, example: Example, background: str | None = None) -> dict:
        """An SFT row (TRL prompt-completion): the draft prompt and the gold draft (see `draft_target`)."""
        return {"prompt": self.draft_prompt(example),
                "completion": [{"role": "assistant", "content": self.draft_target(example, background)}]}

    def corpus_row(self, passage: str) -> dict:
        """An SFT row (TRL prompt-completion) that teaches one corpus passage."""
        return {"prompt": [{"role": "user", "content": self.template("corpus")}],
                "completion": [{"role": "assistant", "content": passage}]}

    def strong_alone(self, example: Example) -> Conversation:
        """Strong model alone with chain of thought."""
        return [{"role": "user", "content": self.render("strong_alone", example)}]

    def shown_draft(self, draft: str) -> str:
        """What the strong model sees of a draft."""
        return select_sections(draft, self.draft_sections) if self.draft_sections else draft.strip()

    def strong_refine(self, example: Example, draft: str) -> Conversation:
        """Strong model given the question and the weak model's draft (its shown sections)."""
        return [{"role": "user", "content": self.render("strong_refine", example, draft=self.shown_draft(draft))}]

    def supericl(self, example: Example, prediction: str, confidence: float) -> Conversation:
        """Strong model given the weak model's predicted answer and its probability (SuperICL-style)."""
        text = self.render("supericl", example, prediction=prediction, confidence=f"{confidence:.2f}")
        return [{"role": "user", "content": text}]

    def retrieval(self, example: Example, passages: Sequence[str]) -> Conversation:
        """Strong model given the top retrieved corpus passages."""
        shown = "\n".join(f"[{i + 1}] {' '.join(p.split())}" for i, p in enumerate(passages))
        return [{"role": "user", "content": self.render("retrieval", example, passages=shown)}]

    def judge(self, example: Example, response: str) -> Conversation:
        """Judge prompt rating a response against the ground truth."""
        gold = self.task_type.format_answer(example)
        return [{"role": "user", "content": self.render("judge", example, gold=gold, response=response.strip())}]

    def answer_only(self, conversation: Conversation, reply: str) -> Conversation:
        """Follow-up turn asking for the answer alone."""
        ask = self.template("answer_only").format(answer_hint=self.task_type.answer_hint)
        return [*conversation, {"role": "assistant", "content": reply}, {"role": "user", "content": ask}]


def templated_background(task_type: TaskType, example: Example) -> str:
    """Short rationale when the data holds no knowledge for the example: it teaches the answer, not a fact."""
    return f"The relevant fact is that the answer to this question is {task_type.format_answer(example)}."


def _headings(sections: Sequence[str]) -> tuple[str, ...]:
    """The lower-case line openings ("background:") of the named draft sections."""
    return tuple(f"{s.lower()}:" for s in sections)


def select_sections(draft: str, sections: Sequence[str]) -> str:
    """The draft's lines that start with one of `sections` ("Background: ..."); the whole draft if none do."""
    wanted = _headings(sections)
    kept = [ln.strip() for ln in draft.splitlines() if ln.strip().lower().startswith(wanted)]
    return "\n".join(kept) if kept else draft.strip()


def cut_in_shown(draft: str, sections: Sequence[str] | None) -> bool:
    """Whether a draft that stopped at the token cap lost part of what the strong model reads: with `sections`, only
    when no line follows its last shown one (a cut in a later, hidden section costs the strong model nothing)."""
    if not sections:
        return True
    wanted = _headings(sections)
    lines = [ln.strip().lower() for ln in draft.splitlines() if ln.strip()]
    last = max((i for i, ln in enumerate(lines) if ln.startswith(wanted)), default=None)
    return last is None or last == len(lines) - 1


def draft_answer_section(draft: str) -> str:
    """The draft's last 'Answer:' line (weak-alone prediction text)."""
    lines = [ln for ln in draft.splitlines() if ln.strip().lower().startswith("answer")]
    return lines[-1] if lines else draft
