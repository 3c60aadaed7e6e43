"""Evaluation helpers: draft knowledge recall, tables and paired comparisons."""

from fakes import ScriptedBackend

from cowest.collab import Collaborator, Prompter
from cowest.config import CollabConfig, EvalConfig
from cowest.evaluate import evaluate, get_systems, results_table, states_gold
from cowest.tasks.base import Example
from cowest.tasks.types import MultipleChoice

MC = Example(id="1", question="Dose of X?", options=["9.5 mg/kg", "5 mg/kg"], gold="A")


def test_states_gold():
    assert states_gold("Background: X has a maximum daily dose of 9.5 mg/kg.\nAnswer: B", MC)
    assert not states_gold("Background: X has a maximum daily dose of 19.5 mg/kg.", MC)
    short = Example(id="2", question="Who?", gold="Alan Turing", answers=["Alan Turing", "Turing"])
    assert states_gold("I think it was Turing.", short) and not states_gold("Turingery", short)
    label = Example(id="3", question="Safe?", options=["casual", "needs caution"], gold="needs caution")
    assert states_gold("This needs caution.", label)


def test_evaluate_rows_results_and_comparisons():
    examples = [Example(id=str(i), question=f"Q{i}?", options=["yes", "no"], gold="A") for i in range(20)]
    prompter = Prompter(MultipleChoice(), "knowledge")
    # The weak model states the right fact but picks B; the strong model answers A only with a draft.
    weak = ScriptedBackend(lambda c, i, s: "Background: the answer is yes.\nAnswer: B")
    strong = ScriptedBackend(lambda c, i, s: "Final answer: A" if "Draft" in c[-1]["content"] else "Final answer: B")
    collab = Collaborator(None, strong, prompter, CollabConfig())
    systems = get_systems(["weak_sft", "strong", "refine"])
    rows, res = evaluate(examples, systems, lambda v: weak, collab, EvalConfig(n_bootstrap=200))
    assert len(rows) == 60 and {r["system"] for r in rows} == {"weak_sft", "strong", "refine"}
    acc = {k: v["metrics"]["accuracy"]["value"] for k, v in res["systems"].items()}
    assert acc == {"weak_sft": 0.0, "strong": 0.0, "refine": 1.0}
    assert res["systems"]["weak_sft"]["draft_states_gold"] == 1.0
    assert res["systems"]["refine"]["strong_prompt_tokens_per_q"] == 10
    comp = res["comparisons"]["refine - weak_sft"]
    assert comp["diff"] == 1.0 and comp["lo"] == 1.0 and comp["p_value"] == 0.0
    table = results_table(res)
    assert "| standard refinement (SFT draft -> strong) | 100.0 [100.0, 100.0]" in table


def test_results_store_their_confidence_level():
    examples = [Example(id=str(i), question=f"Q{i}?", options=["yes", "no"], gold="A") for i in range(4)]
    strong = ScriptedBackend(lambda c, i, s: "Final answer: A")
    collab = Collaborator(None, strong, Prompter(MultipleChoice(), "knowledge"), CollabConfig())
    _, res = evaluate(examples, get_systems(["strong"]), lambda v: strong, collab,
                      EvalConfig(n_bootstrap=50, confidence=0.9))
    assert res["confidence"] == 0.9


class _CappedBackend(ScriptedBackend):
    """Scripted replies; a reply ending in '...' stands for one cut by the token cap."""

    def _generate(self, conversations, n, sampling):
        out = super()._generate(conversations, n, sampling)
        for comps in out:
            for c in comps:
                if c.text.endswith("..."):
                    c.finish_reason = "length"
                    c.text = c.text.removesuffix("...")
        return out


def test_short_answers_without_a_final_answer_are_reasked_and_reported():
    from cowest.report.tables import results_rows
    from cowest.tasks.types import ShortAnswer

    examples = [Example(id=str(i), question=f"If Q{i}, which language?", gold="Spanish") for i in range(4)]
    prose = ("If Shakespeare had been born in Spain, he would most likely have written in Spanish. He wrote in "
             "English, which is the official language of England.")
    cut = "If Shakespeare had been born in Spain, he would most likely have written in Spanish. Shakespeare was..."

    caps = []

    def script(conv, i, sampling):
        caps.append(sampling.max_tokens)
        q = int(conv[0]["content"].split("If Q")[1][0])
        if len(conv) > 1:  # the re-ask: answered on questions 0 and 1 only
            return "Final answer: Spanish" if q < 2 else "I cannot say."
        return [prose, cut, "Final answer: Spanish", cut][q]

    strong = _CappedBackend(script)
    cfg = CollabConfig(reask_max_tokens=32)
    collab = Collaborator(None, strong, Prompter(ShortAnswer(), "knowledge"), cfg)
    _, res = evaluate(examples, get_systems(["strong"]), lambda v: strong, collab, EvalConfig(n_bootstrap=50))
    # Three replies had no answer statement and were asked once more, with the re-ask's own token cap.
    assert len(strong.requests) == 4 + 3
    assert [len(c) for c in strong.requests[4:]] == [3, 3, 3] and caps == [256] * 4 + [32] * 3
    s = res["systems"]["strong"]
    assert s["answered"] == 0.75 and s["truncated_share"] == 0.5
    assert s["metrics"]["em"]["value"] == 0.75
    headers, rows, _ = results_rows(res)
    row = dict(zip(headers, rows[0]))
    assert row["answered %"] == "75.0" and row["cut at token cap %"] == "50.0"
