"""Evaluation helpers: draft knowledge recall, tables and paired comparisons."""

import pytest
from fakes import ScriptedBackend

from cowest.collab import Collaborator, Prompter
from cowest.config import CollabConfig, EvalConfig
from cowest.collab.recall import states_gold
from cowest.evaluate import evaluate, fact_gain
from cowest.report.tables import draft_rows, results_markdown
from cowest.systems import get_systems
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
    acc = {k: v.metrics["accuracy"].value for k, v in res.systems.items()}
    assert acc == {"weak_sft": 0.0, "strong": 0.0, "refine": 1.0}
    assert res.systems["weak_sft"].draft_states_gold == 1.0
    assert res.systems["refine"].strong_prompt_tokens_per_q == 10
    comp = res.comparisons["refine - weak_sft"]
    # all 20 questions discordant, each won by refinement: the exact McNemar p is 1/2^20
    assert comp.diff == 1.0 and comp.lo == 1.0 and comp.p_value == 2.0**-20 and comp.test == "exact McNemar"
    table = results_markdown(res)
    assert "| standard refinement (SFT draft -> strong) | 100.0 [100.0, 100.0]" in table


def test_results_store_their_confidence_level():
    examples = [Example(id=str(i), question=f"Q{i}?", options=["yes", "no"], gold="A") for i in range(4)]
    strong = ScriptedBackend(lambda c, i, s: "Final answer: A")
    collab = Collaborator(None, strong, Prompter(MultipleChoice(), "knowledge"), CollabConfig())
    _, res = evaluate(examples, get_systems(["strong"]), lambda v: strong, collab,
                      EvalConfig(n_bootstrap=50, confidence=0.9))
    assert res.confidence == 0.9


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
    s = res.systems["strong"]
    assert s.answered == 0.75 and s.truncated_share == 0.5
    assert s.metrics["em"].value == 0.75
    headers, rows, _ = results_rows(res)
    row = dict(zip(headers, rows[0]))
    assert row["answered %"] == "75.0" and row["cut at token cap %"] == "50.0"


def test_calls_and_cache_hits_are_counted_apart_from_wall_time(tmp_path):
    from cowest.models import CachedBackend, CallCache

    examples = [Example(id=str(i), question=f"Q{i}?", options=["yes", "no"], gold="A") for i in range(5)]
    prompter = Prompter(MultipleChoice(), "knowledge")
    # Identical drafts give identical refinement requests: the second system's strong calls are cache hits.
    def weak(variant):  # evaluate closes each variant's model after drafting
        return CachedBackend(ScriptedBackend(lambda c, i, s: "Background: yes.\nAnswer: A", "weak"),
                             CallCache(tmp_path / "c.sqlite"))

    strong = CachedBackend(ScriptedBackend(lambda c, i, s: "Final answer: A", "strong"), CallCache(tmp_path / "c.sqlite"))
    collab = Collaborator(None, strong, prompter, CollabConfig())
    systems = get_systems(["weak_sft", "weak_aligned", "refine", "cowest"])
    _, res = evaluate(examples, systems, weak, collab, EvalConfig(n_bootstrap=50))
    got = {k: (v.calls, v.cache_hits) for k, v in res.systems.items()}
    # weak: 5 SFT draft calls, then the same 5 conversations for the aligned variant come from the cache
    assert got == {"weak_sft": (5, 0), "weak_aligned": (0, 5), "refine": (10, 0), "cowest": (0, 10)}
    _, again = evaluate(examples, systems, weak, collab, EvalConfig(n_bootstrap=50))
    assert all(v.calls == 0 and v.cache_hits > 0 for v in again.systems.values())
    table = results_markdown(again)
    assert table.splitlines()[0].endswith("| strong tok/q | model calls | cache hits | wall s |")


def test_comparisons_name_their_metric_and_small_p_values():
    from cowest.report.tables import comparison_rows, headline, p_text
    from cowest.tasks.types import ShortAnswer

    examples = [Example(id=str(i), question=f"Who {i}?", gold="Alan Turing") for i in range(12)]
    strong = ScriptedBackend(lambda c, i, s: "Final answer: Alan Turing" if "Draft" in c[-1]["content"]
                             else "Final answer: Turing")
    weak = ScriptedBackend(lambda c, i, s: "Background: Alan Turing.\nAnswer: Alan Turing")
    collab = Collaborator(None, strong, Prompter(ShortAnswer(), "knowledge"), CollabConfig())
    _, res = evaluate(examples, get_systems(["strong", "refine"]), lambda v: weak, collab, EvalConfig(n_bootstrap=200))
    # Short answers: the primary column is EM, the per-question scores (and so the comparisons) are token F1.
    assert res.score_metric == "f1" and list(res.systems["strong"].metrics)[0] == "em"
    headers, rows = comparison_rows(res)
    assert rows[0][0] == "refine - strong (token F1) (best single model)"
    # every one of the 12 questions favours refinement: p = 1/2^12 of the sign-flip test
    assert headers[3] == "p (one-sided, sign-flip)" and rows[0][3] == ("< 0.001", "sig")
    assert res.comparisons["refine - strong"].p_value == pytest.approx(2.0**-12)
    renamed = {**res.dump(), "comparisons": {"cowest - strong": res.comparisons["refine - strong"].dump()}}
    assert headline(renamed).endswith("one-sided p < 0.001, sign-flip)")
    assert [p_text(p) for p in (0.0, 0.0009, 0.001, 0.0423)] == ["< 0.001", "< 0.001", "0.001", "0.042"]
    # A file written before the metric was stored: accuracy where the systems have it.
    old = {"systems": {"a": {"metrics": {"accuracy": {}, "macro_f1": {}}}},
           "comparisons": {"a - b": {"diff": 0.1, "lo": 0.0, "hi": 0.2, "p_value": 0.2}}}
    assert comparison_rows(old)[1][0][0] == "a - b (accuracy)"
    assert comparison_rows(old)[0][3] == "p (one-sided, bootstrap share)"  # what such a file's p is


def test_draft_diagnostics_count_cuts_inside_the_shown_sections_apart_from_cuts_in_hidden_ones():
    examples = [Example(id=str(i), question=f"Q{i}?", options=["yes", "no"], gold="A") for i in range(4)]
    # drafts 0-1 stop in their hidden Answer line, draft 2 inside its Background, draft 3 is whole
    drafts = ["Background: yes.\nAnswer: A...", "Background: yes.\nAnswer: ...", "Background: the ans...",
              "Background: yes.\nAnswer: A"]
    weak = _CappedBackend(lambda c, i, s: drafts[int(c[-1]["content"].split("Question: Q")[1][0])])
    strong = ScriptedBackend(lambda c, i, s: "Final answer: A")
    shown = Collaborator(None, strong, Prompter(MultipleChoice(), "knowledge", draft_sections=["Background"]),
                         CollabConfig())
    _, res = evaluate(examples, get_systems(["weak_sft", "refine"]), lambda v: weak, shown, EvalConfig(n_bootstrap=50))
    assert res.drafts["sft"].truncated_share == 0.75 and res.drafts["sft"].shown_cut_share == 0.25
    whole = Collaborator(None, strong, Prompter(MultipleChoice(), "knowledge"), CollabConfig())
    _, res = evaluate(examples, get_systems(["weak_sft", "refine"]), lambda v: weak, whole, EvalConfig(n_bootstrap=50))
    assert res.drafts["sft"].truncated_share == 0.75 and res.drafts["sft"].shown_cut_share is None


def test_draft_diagnostics_score_refinement_with_and_without_the_fact_and_what_stating_every_fact_would_gain():
    examples = [Example(id=str(i), question=f"Q{i}: the dose?", options=["yes", "no"], gold="A",
                        metadata={"fact_value": "3.5 mg/kg"}) for i in range(4)]
    # drafts 0-1 state the fact, 2-3 do not; the strong model is right only with the fact in front of it
    drafts = ["Background: 3.5 mg/kg.\nAnswer: A", "Background: it is 3.5 mg/kg.\nAnswer: A",
              "Background: 2 mg/kg.\nAnswer: A", "Background: none.\nAnswer: B"]
    weak = ScriptedBackend(lambda c, i, s: drafts[int(c[-1]["content"].split("Question: Q")[1][0])])
    strong = ScriptedBackend(lambda c, i, s: f"Final answer: {'A' if '3.5 mg/kg' in c[-1]['content'] else 'B'}")
    collab = Collaborator(None, strong, Prompter(MultipleChoice(), "knowledge", draft_sections=["Background"]),
                          CollabConfig())
    _, res = evaluate(examples, get_systems(["strong", "refine"]), lambda v: weak, collab, EvalConfig(n_bootstrap=50))
    d = res.drafts["sft"]
    assert (d.states_fact, d.scored_with_fact, d.scored_without_fact) == (0.5, 1.0, 0.0)
    assert d.fact_gain == pytest.approx(0.5)  # the two drafts without it, scored as those with it
    head, rows = draft_rows(res)
    assert rows[0][head.index("refined: gain if every draft stated it (points)")] == "+50.0"
    assert fact_gain(1.0, 0.75, None) == 0.0 and fact_gain(0.0, None, 0.5) is None  # all state it; none does


def test_draft_diagnostics_leave_the_fact_scores_out_where_no_question_has_a_fact_to_check():
    examples = [Example(id=str(i), question=f"Q{i}?", options=["yes", "no"], gold="A") for i in range(2)]
    weak = ScriptedBackend(lambda c, i, s: "Background: yes.\nAnswer: A")
    strong = ScriptedBackend(lambda c, i, s: "Final answer: A")
    collab = Collaborator(None, strong, Prompter(MultipleChoice(), "knowledge"), CollabConfig())
    _, res = evaluate(examples, get_systems(["strong", "refine"]), lambda v: weak, collab, EvalConfig(n_bootstrap=50))
    assert not any(res.drafts["sft"].holds(k) for k in ("scored_with_fact", "scored_without_fact", "fact_gain"))
