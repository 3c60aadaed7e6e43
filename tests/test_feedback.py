"""Collaborative feedback on a hand-computed example."""

import random
from pathlib import Path

import pytest
from fakes import ScriptedBackend

from cowest.collab import Collaborator, JudgeEvaluator, Prompter, RuleEvaluator, mine, parse_judge_score, select_pairs
from cowest.collab.adaptive import mine_adaptive
from cowest.collab.prompter import cut_in_shown
from cowest.collab.recall import FactSheet, cap_per_line
from cowest.config import CollabConfig, MiningConfig
from cowest.tasks.base import Example
from cowest.tasks.types import MultipleChoice

ROOT = Path(__file__).resolve().parents[1]

OPTS = ["alpha", "beta", "gamma", "delta"]
EXAMPLES = [
    Example(id="q1", question="Which is first?", options=OPTS, gold="A"),
    Example(id="q2", question="Which is also first?", options=OPTS, gold="A"),
]


def weak_script(conv, i, sampling):
    # Sample i proposes letter A, B, C in turn.
    return f"Background: letters.\nReasoning: guess.\nAnswer: {'ABC'[i]}"


def strong_script(conv, i, sampling):
    text = conv[-1]["content"]
    if "--- Draft ---" in text:  # refinement copies the draft's letter
        letter = text.split("--- Draft ---")[1].split("Answer: ")[1][0]
        return f"The draft says {letter}.\nFinal answer: {letter}"
    return "Final answer: B" if "also" not in text else "Final answer: A"


def run_mining(mode="paper", cap=2):
    prompter = Prompter(MultipleChoice(), "cot")
    weak, strong = ScriptedBackend(weak_script, "weak"), ScriptedBackend(strong_script, "strong")
    collab = Collaborator(weak, strong, prompter, CollabConfig())
    cfg = MiningConfig(k=3, mode=mode, max_pairs_per_question=cap)
    return mine(EXAMPLES, collab, RuleEvaluator(prompter), cfg, seed=0), strong


def test_mining_statistics_match_hand_computation():
    res, _ = run_mining()
    # q1: strong alone says B (wrong, s0=0); drafts A/B/C refine to A/B/C -> deltas 1, 0, 0.
    # q2: strong alone says A (right, s0=1); deltas 0, -1, -1 -> no chosen draft, no pair.
    s = res.stats
    assert s["questions"] == 2 and s["drafts"] == 6
    assert s["pairs"] == 2 and s["questions_with_pair"] == 1 and s["share_with_pair"] == 0.5
    assert s["mean_delta"] == pytest.approx(-1 / 6)
    assert s["share_helped"] == pytest.approx(1 / 6)
    assert s["share_hurt"] == pytest.approx(2 / 6)
    assert s["strong_alone_score"] == 0.5
    for p in res.pairs:
        assert p["question_id"] == "q1"
        assert p["chosen"][0]["content"].endswith("Answer: A")
        assert p["chosen_delta"] > 0 >= p["rejected_delta"]
        assert p["prompt"][0]["role"] == "user" and "Which is first?" in p["prompt"][0]["content"]
    rejected = sorted(p["rejected"][0]["content"][-1] for p in res.pairs)
    assert rejected == ["B", "C"]


def test_refinements_of_one_question_are_adjacent():
    _, strong = run_mining()
    refine_qs = [c[-1]["content"].split("\n")[0] for c in strong.requests if "--- Draft ---" in c[-1]["content"]]
    assert refine_qs == ["Question: Which is first?"] * 3 + ["Question: Which is also first?"] * 3


def test_pair_cap_and_rank_mode():
    res, _ = run_mining(cap=1)
    assert res.stats["pairs"] == 1
    res, _ = run_mining(mode="rank")
    # rank: best vs worst by refined score whenever scores differ (q2 too).
    assert res.stats["pairs"] == 2
    assert {p["question_id"] for p in res.pairs} == {"q1", "q2"}


def test_select_pairs_is_deterministic_given_seed():
    deltas = [1, 1, 0, -1]
    a = select_pairs(deltas, deltas, "paper", 2, random.Random("s"))
    b = select_pairs(deltas, deltas, "paper", 2, random.Random("s"))
    assert a == b and len(a) == 2
    assert all(deltas[c] > 0 >= deltas[r] for c, r in a)
    assert select_pairs([1, 1], [0, 0], "rank", 2, random.Random(0)) == []


@pytest.mark.parametrize(
    "text,expected",
    [("Score: 7", 7), ("score = 10/10", 10), ("**Score:** 3", 3), ("8", 8), ("I think\nScore: 2\n", 2),
     ("no number", None), ("Score: 11", None), ("", None)],
)
def test_parse_judge_score(text, expected):
    assert parse_judge_score(text) == expected


def test_judge_retries_unparseable_then_scores():
    calls = {"n": 0}

    def judge_script(conv, i, sampling):
        calls["n"] += 1
        return "hmm" if sampling.seed == 0 else "Score: 10"

    prompter = Prompter(MultipleChoice(), "cot")
    ev = JudgeEvaluator(ScriptedBackend(judge_script), prompter, retries=2)
    assert ev.score(["Final answer: A"], EXAMPLES[:1]) == [1.0]
    assert calls["n"] == 2 and ev.unparsed == 0


def test_no_pair_between_drafts_the_strong_model_saw_identically():
    # The strong model only sees the Background line; drafts differ only in their hidden Answer line.
    prompter = Prompter(MultipleChoice(), "knowledge", draft_sections=["Background"])
    weak = ScriptedBackend(lambda conv, i, s: f"Background: same facts.\nAnswer: {'ABC'[i]}", "weak")
    calls = iter(range(1000))
    # A server that is not deterministic across identical prompts: alone wrong, then right / wrong alternately.
    strong = ScriptedBackend(lambda conv, i, s: "Final answer: A" if next(calls) % 2 else "Final answer: B", "strong")
    collab = Collaborator(weak, strong, prompter, CollabConfig())
    res = mine(EXAMPLES[:1], collab, RuleEvaluator(prompter), MiningConfig(k=3), seed=0)
    assert "Answer:" not in strong.requests[-1][-1]["content"]
    assert [s["delta"] for s in res.scores if s["k"] is not None] == [1.0, 0.0, 1.0]  # pairs would form...
    assert res.pairs == []  # ...but the drafts looked the same to the strong model


def test_drafts_cut_by_the_token_cap_are_marked_and_counted():
    prompter = Prompter(MultipleChoice(), "cot")
    weak = ScriptedBackend(weak_script, "weak", finish_reason="length")
    collab = Collaborator(weak, ScriptedBackend(strong_script, "strong"), prompter, CollabConfig())
    res = mine(EXAMPLES, collab, RuleEvaluator(prompter), MiningConfig(k=3), seed=0)
    assert all(d["truncated"] for d in res.drafts) and res.stats["drafts_truncated"] == 1.0
    res, _ = run_mining()
    assert not any(d["truncated"] for d in res.drafts) and res.stats["drafts_truncated"] == 0.0


def test_only_drafts_cut_inside_the_shown_sections_count_as_cut_for_the_strong_model():
    assert cut_in_shown("Background: a fact.\nAnswer: 13:5", ["Background"]) is False  # the hidden answer was cut
    assert cut_in_shown("Background: a fact that goes on and", ["Background"]) is True
    assert cut_in_shown("no sections at all", ["Background"]) is True  # the whole draft is shown
    assert cut_in_shown("Background: a fact.\nAnswer: 13:5", None) is True  # whole drafts are shown

    def weak(conv, i, sampling):  # the second sample's cap falls in its hidden Background, the others' in Answer
        return f"Answer: {'ABC'[i]}\nBackground: letters and" if i == 1 else f"Background: letters.\nAnswer: {'ABC'[i]}"

    prompter = Prompter(MultipleChoice(), "knowledge", draft_sections=["Answer"])
    weak_backend = ScriptedBackend(weak, "weak", finish_reason="length")
    collab = Collaborator(weak_backend, ScriptedBackend(strong_script, "strong"), prompter, CollabConfig())
    res = mine(EXAMPLES, collab, RuleEvaluator(prompter), MiningConfig(k=3), seed=0)
    assert res.stats["drafts_truncated"] == 1.0 and res.stats["drafts_cut_shown"] == pytest.approx(2 / 3)


# ---- adaptive mining: the strong calls go where pairs are

def _domain(n: int = 12) -> list[Example]:
    """Questions whose gold is A; `kind` says how the scripted weak model drafts for them (see `_weak`)."""
    kinds = ["split", "same", "alone_right"]
    return [Example(id=f"q{i:02d}", question=f"Question {i} ({kinds[i % 3]})?", options=OPTS, gold="A")
            for i in range(n)]


def _weak(conv, i, sampling):
    """'same' questions always get one draft; the others get the letter A, B, C, D by sample (extra drafts, drawn with
    another seed, propose A once more and then D)."""
    text = conv[-1]["content"]
    if "(same)" in text:
        return "Background: nothing new.\nAnswer: B"
    letter = "ABCD"[i] if sampling.seed < 1000 else "AD"[i % 2]
    return f"Background: the facts point to {letter}.\nAnswer: {letter}"


def _strong(conv, i, sampling):
    """Alone: right only on 'alone_right' questions; refining: follows the draft's background letter."""
    text = conv[-1]["content"]
    if "--- Draft ---" in text:
        return f"Final answer: {text.split('point to ')[1][0] if 'point to ' in text else 'B'}"
    return "Final answer: A" if "(alone_right)" in text else "Final answer: C"


def _mine(strategy: str, **cfg):
    from cowest.collab.adaptive import mine_adaptive

    prompter = Prompter(MultipleChoice(), "knowledge", draft_sections=["Background"])
    strong = ScriptedBackend(_strong, "strong")
    collab = Collaborator(ScriptedBackend(_weak, "weak"), strong, prompter, CollabConfig())
    mcfg = MiningConfig(**{"k": 4, "strategy": strategy, "max_pairs_per_question": 4, **cfg})
    if strategy == "adaptive":
        return mine_adaptive(_domain(), collab, RuleEvaluator(prompter), mcfg, seed=0), strong
    return mine(_domain(), collab, RuleEvaluator(prompter), mcfg, seed=0), strong


def test_adaptive_mining_never_sends_drafts_that_cannot_pair_and_refines_each_shown_draft_once():
    res, strong = _mine("adaptive", extra_drafts=0)
    s = res.stats
    # 4 'same' questions: one shown draft, never sent; 4 'alone_right': one call each; 4 'split': 1 + 4 calls each
    assert s["questions_identical_drafts"] == 4 and s["questions_alone_right"] == 4
    assert s["strong_requests"] == len(strong.requests) == 4 + 4 * 5
    shown = [c[-1]["content"] for c in strong.requests if "--- Draft ---" in c[-1]["content"]]
    assert len(shown) == len(set(shown)) == 16  # each distinct shown draft refined once
    assert not any("(same)" in c[-1]["content"] for c in strong.requests)
    # every 'split' question: A helps, B, C, D do not -> 3 pairs each, all chosen A
    assert s["pairs"] == 12 and {p["chosen"][0]["content"][-1] for p in res.pairs} == {"A"}
    assert all(p["chosen_delta"] > 0 >= p["rejected_delta"] for p in res.pairs)


def test_adaptive_finds_the_exhaustive_pairs_with_far_fewer_strong_calls():
    adaptive, _ = _mine("adaptive", extra_drafts=0)
    exhaustive, strong = _mine("exhaustive")
    key = lambda p: (p["question_id"], p["chosen"][0]["content"], p["rejected"][0]["content"])  # noqa: E731
    assert sorted(map(key, adaptive.pairs)) == sorted(map(key, exhaustive.pairs))
    assert exhaustive.stats["strong_requests"] == len(strong.requests) == 12 * 5
    ratio = adaptive.stats["pairs_per_100_requests"] / exhaustive.stats["pairs_per_100_requests"]
    assert ratio == pytest.approx(60 / 24)


def test_adaptive_adds_drafts_where_a_question_splits_and_stops_at_the_target_or_budget():
    res, _ = _mine("adaptive", extra_drafts=2)  # the extra drafts repeat A (copies, no call) and D (a copy too)
    assert res.stats["pairs"] == 12 and res.stats["strong_requests"] == 24
    assert len([d for d in res.drafts if d["question_id"] == "q00"]) == 6
    target, _ = _mine("adaptive", extra_drafts=0, pair_target=3)
    assert target.stats["stopped_by"] == "pair_target" and target.stats["waves"] == 1  # the wave that got there
    budget, strong = _mine("adaptive", extra_drafts=0, strong_call_budget=12)
    assert budget.stats["stopped_by"] == "budget" and len(strong.requests) == budget.stats["strong_requests"] <= 12
    assert budget.stats["strong_requests"] > 12 - 5  # it stopped only when a whole question (1 + 4 calls) no longer fit
    again, _ = _mine("adaptive", extra_drafts=0, strong_call_budget=12)
    assert again.pairs == budget.pairs  # deterministic


def test_adaptive_stops_refining_a_question_once_it_has_all_the_pairs_it_may_give():
    res, strong = _mine("adaptive", extra_drafts=4, max_pairs_per_question=1, redraws=0)
    # 'split' questions: A and B refined (A helps, B does not) give the one pair allowed; C and D are never sent,
    # nor are extra drafts drawn
    assert res.stats["pairs"] == 4 and res.stats["strong_requests"] == len(strong.requests) == 4 + 4 * (1 + 2)
    assert not any("point to C" in c[-1]["content"] or "point to D" in c[-1]["content"] for c in strong.requests)
    assert len(res.drafts) == 12 * 4


def _mine_own(weak_script, questions, **cfg):
    from cowest.collab.adaptive import mine_adaptive

    prompter = Prompter(MultipleChoice(), "knowledge", draft_sections=["Background"])
    strong = ScriptedBackend(_strong, "strong")
    collab = Collaborator(ScriptedBackend(weak_script, "weak"), strong, prompter, CollabConfig())
    mcfg = MiningConfig(**{"k": 4, "max_pairs_per_question": 4, "extra_drafts": 0, **cfg})
    return mine_adaptive(questions, collab, RuleEvaluator(prompter), mcfg, seed=0), strong


def _shy(conv, i, s):
    """'shy' questions: the first draw repeats one Background, a redraw (another seed) points to A, B, C, D; the
    'split' one points to A, B, C, D from the start."""
    if "(shy)" in conv[-1]["content"] and s.seed < 15485863:
        return "Background: the facts point to B.\nAnswer: B"
    return f"Background: the facts point to {'ABCD'[i]}.\nAnswer: {'ABCD'[i]}"


def test_adaptive_redraws_questions_whose_drafts_all_showed_one_text_once_the_others_are_sent():
    qs = _questions(["split", "shy", "shy"])
    res, strong = _mine_own(_shy, qs)
    s = res.stats
    assert s["questions_identical_drafts"] == 2 and s["redraws"] == 1
    assert s["questions_redrawn"] == 2 and s["questions_redrawn_differ"] == 2
    assert {p["question_id"] for p in res.pairs} == {"q00", "q01", "q02"} and s["pairs"] == 9  # A helps: 1 x 3 each
    assert s["stopped_by"] == "exhausted" and s["strong_requests"] == len(strong.requests) == 3 * (1 + 4)
    assert len([d for d in res.drafts if d["question_id"] == "q01"]) == 8  # the first four kept with the redraw's
    never, _ = _mine_own(_shy, qs, redraws=0)
    assert {p["question_id"] for p in never.pairs} == {"q00"} and never.stats["questions_redrawn"] == 0
    # no redraw once the target is met, nor where the budget cannot pay for a question's first calls
    for stop in ({"pair_target": 3}, {"strong_call_budget": 7}):
        held, _ = _mine_own(_shy, qs, **stop)
        assert held.stats["redraws"] == 0 and {p["question_id"] for p in held.pairs} == {"q00"}, stop
        assert len(held.drafts) == 3 * 4


def test_the_budget_counts_the_requests_of_the_wave_being_mined():
    # two drafts (A helps, B does not) split; extra drafts bring C and D, which the budget of 1 + 2 no longer pays for
    weak = lambda conv, i, s: f"Background: the facts point to {('AB' if s.seed < 1000 else 'CD')[i % 2]}.\nAnswer: A"  # noqa: E731
    qs = _questions(["split"])
    res, strong = _mine_own(weak, qs, k=2, extra_drafts=2, strong_call_budget=3, redraws=0)
    assert res.stats["strong_requests"] == len(strong.requests) == 3 and res.stats["pairs"] == 1
    unbounded, strong = _mine_own(weak, qs, k=2, extra_drafts=2, redraws=0)
    assert unbounded.stats["strong_requests"] == len(strong.requests) == 5 and unbounded.stats["pairs"] == 3


def test_adaptive_gives_up_on_a_question_whose_refinements_all_land_on_one_side():
    # four different drafts, none pointing to A: the strong model follows each to a wrong answer
    weak = lambda conv, i, s: f"Background: the facts point to {'BCDB'[i]}{' again' if i == 3 else ''}.\nAnswer: B"  # noqa: E731
    qs = [Example(id=f"h{i}", question=f"Hopeless {i}?", options=OPTS, gold="A") for i in range(2)]
    res, strong = _mine_own(weak, qs)
    assert res.stats["strong_requests"] == len(strong.requests) == 2 * (1 + 3)  # alone, then three refinements
    assert not any("B again" in c[-1]["content"] for c in strong.requests)
    assert res.pairs == [] and len(res.drafts) == 8  # the fourth draft is kept, unrefined


def test_adaptive_sends_first_the_questions_whose_drafts_disagree_on_the_fact():
    def weak(conv, i, s):  # 'mixed': two drafts name the gold's option text (alpha), two do not; 'uniform': none do
        if "mixed" in conv[-1]["content"]:
            return f"Background: the facts point to {'ABAB'[i]}, {'alpha' if i % 2 == 0 else 'beta'} {i}.\nAnswer: A"
        return f"Background: the facts point to {'BCDB'[i]}, variant {i}.\nAnswer: B"

    qs = [Example(id=f"u{i}", question=f"Uniform {i}?", options=OPTS, gold="A") for i in range(3)]
    qs.append(Example(id="m0", question="The mixed one?", options=OPTS, gold="A"))
    res, strong = _mine_own(weak, qs, strong_call_budget=5)  # pays for one question: 1 + 4 distinct drafts
    assert {r["question_id"] for r in res.scores} == {"m0"}
    assert res.stats["pairs"] == 4  # A-drafts help, B-drafts do not: 2 x 2, found with all four refined


def _agree_or_split(conv, i, s):
    """'agree' questions: four different drafts, all pointing to B (their refinements agree: no pair); 'split' and
    'alone_right' ones: the letters A-D, so A's refinement is right and the others are not."""
    if "(agree)" in conv[-1]["content"]:
        return f"Background: the facts point to B, version {i}.\nAnswer: B"
    return f"Background: the facts point to {'ABCD'[i]}.\nAnswer: {'ABCD'[i]}"


def _questions(kinds: list[str]) -> list[Example]:
    return [Example(id=f"q{i:02d}", question=f"Question {i} ({k})?", options=OPTS, gold="A")
            for i, k in enumerate(kinds)]


def test_asking_the_strong_model_alone_last_spends_it_only_where_refinements_differ_and_keeps_the_pairs():
    qs = _questions(["split", "agree", "alone_right"] * 4)
    first, strong_first = _mine_own(_agree_or_split, qs, alone="first")
    last, strong_last = _mine_own(_agree_or_split, qs, alone="last")
    key = lambda p: (p["question_id"], p["chosen"][0]["content"], p["rejected"][0]["content"])  # noqa: E731
    assert sorted(map(key, last.pairs)) == sorted(map(key, first.pairs)) and len(first.pairs) == 12
    # first: split 1 + 4, agree 1 + 3 (gives up), alone_right 1 (its drafts are never sent)
    assert first.stats["strong_requests"] == len(strong_first.requests) == 4 * (5 + 4 + 1)
    # last: split 4 + 1 (asked once A and B differ), agree 3 (never asked), alone_right 2 + 1, then one more
    # refinement (both refined drafts are rejected against a right strong answer: it gives up at three)
    assert last.stats["strong_requests"] == len(strong_last.requests) == 4 * (5 + 3 + 4)
    assert last.stats["questions_alone_not_asked"] == 4 and first.stats["questions_alone_not_asked"] == 0
    agree = [r for r in last.scores if r["question_id"] == "q01"]
    assert [r["label"] for r in agree] == ["strong_alone", None, None, None] and agree[0]["score"] is None
    # the strong model alone's score is over the questions it answered: split (wrong) and alone_right (right)
    assert last.stats["strong_alone_score"] == 0.5 and first.stats["strong_alone_score"] == pytest.approx(1 / 3)


def test_auto_asks_alone_first_for_one_wave_and_last_after_it_only_where_that_costs_fewer_calls():
    from cowest.collab.adaptive import WAVE, alone_last_pays

    # The strong model alone never right, most refinements agree: last pays from the second wave on
    qs = _questions(["split", "agree", "agree", "agree"] * 8)
    auto, _ = _mine_own(_agree_or_split, qs)
    first, _ = _mine_own(_agree_or_split, qs, alone="first")
    assert auto.stats["alone"] == "auto" and auto.stats["alone_last_after"] == WAVE
    assert len(auto.pairs) == len(first.pairs) == 8 * 3
    # the calls saved are the alone calls of the later waves' 'agree' questions, never asked
    unasked = {r["question_id"] for r in auto.scores if r["k"] is None and r["score"] is None}
    assert first.stats["strong_requests"] - auto.stats["strong_requests"] == len(unasked) > 0
    assert all("(agree)" in next(q.question for q in qs if q.id == u) for u in unasked)
    asked = {r["question_id"] for r in auto.scores if r["k"] is None and r["score"] is not None}
    assert len(unasked) == 24 - sum("(agree)" in q.question for q in qs if q.id in asked)  # all but wave 1's
    # Half the questions answered right by the strong model alone: first stays cheaper, so auto never switches
    qs = _questions(["split", "alone_right"] * 16)
    auto, _ = _mine_own(_agree_or_split, qs)
    first, _ = _mine_own(_agree_or_split, qs, alone="first")
    assert auto.stats["alone_last_after"] is None and auto.stats["strong_requests"] == first.stats["strong_requests"]
    cfg = MiningConfig()
    assert alone_last_pays([0, 1], [0, 1], {0: 0.0, 1: 0.0}, {0: {0: 1.0, 1: 0.0}, 1: {0: 0.0, 1: 0.0, 2: 0.0}}, cfg)
    assert not alone_last_pays([0, 1], [0], {0: 0.0, 1: 1.0}, {0: {0: 1.0, 1: 0.0, 2: 0.0}, 1: {}}, cfg)


def test_judge_calibration_separates_a_judge_that_reads_the_gold_from_one_that_does_not():
    from cowest.collab.evaluators import calibrate_judge

    def fair(conv, i, s):
        text = conv[-1]["content"]
        gold = text.split("Ground truth: ")[1].split("\n")[0]
        return "Score: 9" if f"Final answer: {gold}" in text else "Score: 2"

    prompter = Prompter(MultipleChoice(), "cot")
    qs = _domain(8)
    good = calibrate_judge(JudgeEvaluator(ScriptedBackend(fair), prompter), qs, seed=0)
    assert good["auc"] == 1.0 and good["questions"] == 8 and good["wrong_rated_high"] == 0.0
    lenient = calibrate_judge(JudgeEvaluator(ScriptedBackend(lambda c, i, s: "Score: 10"), prompter), qs, seed=0)
    assert lenient["auc"] == 0.5 and lenient["wrong_rated_high"] == 1.0


def test_wrong_answers_for_calibration_keep_the_answers_kind():
    from cowest.collab.evaluators import wrong_answer

    rng = random.Random(0)
    pool = [Example(id=str(i), question="q", gold=g, answers=[g]) for i, g in enumerate(["42", "17 crowns", "Paris"])]
    assert wrong_answer(pool[0], pool, rng) == "17 crowns"  # a number for a number
    assert wrong_answer(pool[2], pool, rng) is None  # no other text answer
    mc = Example(id="m", question="q", options=OPTS, gold="B")
    assert wrong_answer(mc, [mc], rng) in {"A) alpha", "C) gamma", "D) delta"}


def _against_fact(drop: bool):
    # Strong alone is wrong (B). A draft with no fact happens to lead to A (chosen); one that states the fact but
    # points to B is rejected; one that states the fact and points to A is chosen too.
    weak = lambda conv, i, s: [  # noqa: E731
        "Background: no rule is known here.\nAnswer: A", "Background: the limit is 7 days, so B.\nAnswer: B",
        "Background: the limit is 7 days, so A.\nAnswer: A"][i]
    strong = ScriptedBackend(strong_script, "strong")
    prompter = Prompter(MultipleChoice(), "cot")
    collab = Collaborator(ScriptedBackend(weak, "weak"), strong, prompter, CollabConfig())
    ex = Example(id="f1", question="Which is first?", options=OPTS, gold="A", metadata={"fact_value": "7 days"})
    cfg = MiningConfig(k=3, max_pairs_per_question=4, drop_against_fact=drop)
    return mine([ex], collab, RuleEvaluator(prompter), cfg, seed=0)


def test_pairs_record_the_fact_and_drop_against_fact_leaves_out_pairs_that_prefer_a_draft_without_it():
    kept = _against_fact(drop=False)
    facts = sorted((p["chosen_states_fact"], p["rejected_states_fact"]) for p in kept.pairs)
    assert facts == [(False, True), (True, True)]
    assert (kept.stats["pairs_for_fact"], kept.stats["pairs_against_fact"]) == (0, 1)
    assert kept.stats["pairs_dropped_against_fact"] == 0
    dropped = _against_fact(drop=True)
    assert [(p["chosen_states_fact"], p["rejected_states_fact"]) for p in dropped.pairs] == [(True, True)]
    assert dropped.stats["pairs_against_fact"] == 0 and dropped.stats["pairs_dropped_against_fact"] == 1


MISSTATED = ["Background: The return limit for Alpha orders is 9 days.\nAnswer: A",
             "Background: The return limit for Alpha orders is 7 days.\nAnswer: A",
             "Background: The return limit for Alpha orders is 7 days.\nAnswer: B"]
UNSAID = ["Background: The return limit for Alpha orders is 7 days.\nAnswer: A",
          "Background: The return limit for Alpha orders is 7 days. The return limit for Beta orders is 9 days.\n"
          "Answer: B", "Background: The return limit for Alpha orders is 8 days.\nAnswer: B"]


def _misstated(drop: bool, strategy: str = "exhaustive", texts: list[str] = MISSTATED):
    # Strong alone is wrong (B); a draft whose answer is A is chosen. MISSTATED: a draft that misstates the file's
    # limit, one that states it (both chosen) and one that states it but points to B. UNSAID: one chosen draft, a
    # rejected one that also states another true line, and a rejected one that misstates the limit.
    weak = lambda conv, i, s: texts[i % 3]  # noqa: E731
    prompter = Prompter(MultipleChoice(), "cot")
    collab = Collaborator(ScriptedBackend(weak, "weak"), ScriptedBackend(strong_script, "strong"), prompter,
                          CollabConfig())
    ex = Example(id="m1", question="Which is first?", options=OPTS, gold="A")
    sheet = FactSheet(["The return limit for Alpha orders is 7 days.", "The return limit for Beta orders is 9 days."])
    cfg = MiningConfig(k=3, max_pairs_per_question=4, drop_against_file=drop, strategy=strategy, extra_drafts=0)
    if strategy == "adaptive":
        return mine_adaptive([ex], collab, RuleEvaluator(prompter), cfg, seed=0, sheet=sheet)
    return mine([ex], collab, RuleEvaluator(prompter), cfg, seed=0, sheet=sheet)


@pytest.mark.parametrize("strategy", ["exhaustive", "adaptive"])
def test_a_chosen_draft_that_misstates_the_fact_file_is_left_out_of_the_pairs(strategy):
    kept = _misstated(drop=False, strategy=strategy)
    assert len(kept.pairs) == 2 and kept.stats["pairs_dropped_against_file"] == 0
    dropped = _misstated(drop=True, strategy=strategy)
    assert [p["chosen"][0]["content"] for p in dropped.pairs] == [
        "Background: The return limit for Alpha orders is 7 days.\nAnswer: A"]
    assert dropped.stats["pairs_dropped_against_file"] == 1


def test_a_pair_whose_rejected_draft_alone_states_a_true_fact_line_is_left_out_too():
    assert len(_misstated(drop=False, texts=UNSAID).pairs) == 2
    dropped = _misstated(drop=True, texts=UNSAID)
    assert [p["rejected"][0]["content"] for p in dropped.pairs] == [UNSAID[2]]  # DPO may push a wrong value down
    assert dropped.stats["pairs_dropped_against_file"] == 1


def test_a_fact_sheet_finds_the_line_a_sentence_misstates_and_nothing_else():
    sheet = FactSheet(["On the Heron Line, the journey from Zellbrook to Tollerby takes 98 minutes.",
                       "On the Heron Line, the journey from Pellingrove to Tollerby takes 71 minutes.",
                       "The fare rose to 5 crowns in 2020.", "The fare rose to 6 crowns in 2021."])
    wrong = "Background: On the Heron Line, the journey from Zellbrook to Tollerby takes 71 minutes.\nAnswer: 142"
    assert sheet.read(wrong)[1] == "On the Heron Line, the journey from Zellbrook to Tollerby takes 98 minutes."
    assert sheet.read(wrong.replace("71", "98"))[1] is None  # stated as the file has it
    assert sheet.read("The fare rose to 6 crowns in 2021.")[1] is None  # one of two equally close lines
    assert sheet.read("The fare rose to 6 crowns in 2020.")[1] == "The fare rose to 5 crowns in 2020."
    assert sheet.read("Heron Line: 71 minutes.")[1] is None  # too few words to read as a line
    assert sheet.read("The Heron Line's trains from Zellbrook run every 71 minutes.")[1] is None  # another claim
    assert sheet.read("On the Heron Line, the journey from Zellbrook to Tollerby is short.")[1] is None  # no number
    assert sheet.read("On the Heron Line, the journey from Zellbrook to Tollerby takes 98 minutes. The fare rose to 6 "
                      "crowns in 2021.") == (
        {"On the Heron Line, the journey from Zellbrook to Tollerby takes 98 minutes.",
         "The fare rose to 6 crowns in 2021."}, None)


def test_pairs_over_the_cap_per_fact_line_are_left_out_in_mining_order():
    alpha, beta = "The return limit for Alpha orders is 7 days.", "The return limit for Beta orders is 9 days."
    sheet = FactSheet([alpha, beta])
    texts = [f"Background: {alpha}\nAnswer: A", f"Background: {beta}\nAnswer: B", f"Background: {alpha}\nAnswer: C",
             f"Background: {alpha} {beta}\nAnswer: D", "Background: Alpha is first.\nAnswer: A",
             f"Background: {beta}\nAnswer: E"]
    pairs = [{"id": i, "chosen": [{"role": "assistant", "content": t}]} for i, t in enumerate(texts)]
    shown = Prompter(MultipleChoice(), "cot", draft_sections=["Background"]).shown_draft
    # two per line: the 4th states Alpha, already stated twice; a draft stating no line is never capped
    assert [p["id"] for p in cap_per_line(pairs, sheet, shown, 2)] == [0, 1, 2, 4, 5]
    assert [p["id"] for p in cap_per_line(pairs, sheet, shown, 1)] == [0, 1, 4]
    assert cap_per_line(pairs, sheet, shown, 0) == pairs  # 0: no cap
    assert cap_per_line(pairs, FactSheet([]), shown, 1) == pairs  # no fact file: nothing to count


def test_adaptive_mining_counts_toward_its_target_only_the_pairs_the_cap_per_fact_keeps():
    def alpha(conv, i, s):  # every draft states the one fact line; A helps, B, C, D do not
        return f"Background: The return limit for Alpha orders is 7 days. The facts point to {'ABCD'[i]}.\nAnswer: A"

    def run(cap: int):
        prompter = Prompter(MultipleChoice(), "knowledge", draft_sections=["Background"])
        collab = Collaborator(ScriptedBackend(alpha, "weak"), ScriptedBackend(_strong, "strong"), prompter,
                              CollabConfig())
        cfg = MiningConfig(k=4, max_pairs_per_question=4, extra_drafts=0, pair_target=6, max_pairs_per_fact=cap)
        sheet = FactSheet(["The return limit for Alpha orders is 7 days."])
        return mine_adaptive(_domain(24), collab, RuleEvaluator(prompter), cfg, seed=0, sheet=sheet).stats

    uncapped, capped = run(0), run(3)  # 16 of the 24 questions give 3 pairs each; a wave sends 16 questions
    assert uncapped["stopped_by"] == "pair_target" and uncapped["waves"] == 1 and uncapped["pairs"] < 48
    assert capped["stopped_by"] == "exhausted" and capped["pairs"] == 48  # 3 kept never reach 6: every question sent


def test_mining_bench_traces_per_question_where_adaptive_found_fewer_pairs_than_the_loop():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_mining", ROOT / "bench/bench_mining.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    shown = Prompter(MultipleChoice(), "knowledge", draft_sections=["Background"]).shown_draft
    qs = _domain()
    loop = bench.by_question(_mine("exhaustive")[0], shown, qs)
    assert loop["q00"] == {"shown": 4, "stating": 0, "alone": 0.0, "refined": 4, "chosen": 1, "rejected": 3,
                           "pairs": 3}
    assert loop["q01"] == {"shown": 1, "stating": 0, "alone": 0.0, "refined": 1, "chosen": 0, "rejected": 1,
                           "pairs": 0}
    adaptive = bench.by_question(_mine("adaptive", extra_drafts=0)[0], shown, qs)
    assert adaptive["q01"]["refined"] == 0 and adaptive["q01"]["alone"] is None  # identical drafts: never sent
    assert bench.fewer(loop, adaptive) == []
    capped = bench.by_question(_mine("adaptive", extra_drafts=0, max_pairs_per_question=1)[0], shown, qs)
    lines = bench.fewer(loop, capped)
    assert len(lines) == 4 and lines[0].startswith("q00: exhaustive 4 shown (0 stating the fact)")
    assert lines[0].endswith("this way 4 shown (0 stating the fact), alone 0.0, 2 refined, 1 chosen / 1 rejected, "
                             "1 pairs")
    parted = bench.against(loop, capped)
    assert parted["fewer_pairs"] == 4 and parted["pairs_lost"] == 8 and parted["fewer_left_early"] == 4
    assert parted["pairs_lost_left_early"] == 8
    assert parted["alone_scored_differently"] == 0 and parted["more_pairs"] == 0
    spec = importlib.util.spec_from_file_location("bench_render", ROOT / "bench/render.py")
    render = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(render)
    gave = [q for q in loop.values() if q["pairs"]]
    calls, pairs = sum(1 + q["refined"] for q in gave), sum(q["pairs"] for q in gave)
    line = render._mining_oracle({"by_question": loop, "pairs_per_100_calls": 10.0})
    assert f"the {len(gave)} questions that gave" in line and f"cost {calls} calls for its {pairs} pairs" in line
    assert f"{100 * pairs / calls / 10:.2f}x" in line and len(gave) < len(loop)
    assert render._mining_oracle({"pairs_per_100_calls": 10.0}) == ""  # benches written before `by_question`
