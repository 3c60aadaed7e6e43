"""Prompt templates as data. Placeholders: {question}, {options}, {answer_hint}, {draft}, {gold}, {response},
{prediction}, {confidence}, {passages}."""

from __future__ import annotations

# The weak model's instruction per draft format; SFT trains on exactly these prompts.
DRAFT_INSTRUCTIONS: dict[str, str] = {
    "direct": 'Reply with one line: "Answer: <{answer_hint}>".',
    "knowledge": 'Reply with two lines: "Background: <key domain facts>" and "Answer: <{answer_hint}>".',
    "cot": (
        'Reply with three lines: "Background: <key domain facts>", "Reasoning: <brief steps>" '
        'and "Answer: <{answer_hint}>".'
    ),
}

TEMPLATES: dict[str, str] = {
    "weak_draft": "Question: {question}\n{options}\n{instruction}",
    "strong_alone": (
        "Question: {question}\n{options}\n"
        "Think step by step in at most 3 short sentences, then end with \"Final answer: <{answer_hint}>\"."
    ),
    "strong_refine": (
        "Question: {question}\n{options}\n"
        "A domain-specialised assistant wrote the draft below. It may hold useful domain knowledge "
        "but may also contain errors.\n--- Draft ---\n{draft}\n--- End of draft ---\n"
        "Check the draft critically, correct it with your own reasoning in at most 3 short sentences, "
        "and end with \"Final answer: <{answer_hint}>\"."
    ),
    # SuperICL-style baseline: the strong model sees the weak model's prediction and its confidence.
    "supericl": (
        "Question: {question}\n{options}\n"
        "A small domain-specialised model predicted: {prediction} (confidence {confidence}).\n"
        "Its prediction may be wrong. Think step by step in at most 3 short sentences, then end with "
        "\"Final answer: <{answer_hint}>\"."
    ),
    # Retrieval baseline: the strong model with the top BM25 passages of the domain corpus.
    "retrieval": (
        "Question: {question}\n{options}\n"
        "Passages from the domain's reference material (they may not all be relevant):\n{passages}\n"
        "Think step by step in at most 3 short sentences, then end with \"Final answer: <{answer_hint}>\"."
    ),
    # SFT rows that teach the weak model the domain corpus itself (task.sft_corpus).
    "corpus": "Recite entries from the domain knowledge base.",
    # Sent as a follow-up turn when no answer could be read from the first reply.
    "answer_only": 'Reply with only "Final answer: <{answer_hint}>".',
    "judge": (
        "You are grading a response to a question against the ground truth.\n"
        "Question: {question}\n{options}\nGround truth: {gold}\n--- Response ---\n{response}\n--- End ---\n"
        "Rate 1-10 how coherent the reasoning is and how consistent the final answer is with the ground truth "
        "(10 = correct and well reasoned, 1 = wrong or incoherent). Output only: Score: <n>"
    ),
}

# Draft section headers, used to build SFT targets and to read drafts back.
SECTIONS: dict[str, tuple[str, ...]] = {
    "direct": ("Answer",),
    "knowledge": ("Background", "Answer"),
    "cot": ("Background", "Reasoning", "Answer"),
}
