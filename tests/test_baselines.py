"""The paper's baselines: SuperICL-style prompting (weak answer + confidence) and BM25 retrieval."""

import copy
import math

import pytest
from fakes import ScriptedBackend

from cowest.collab import Collaborator, Prompter
from cowest.collab.baselines import BM25Retriever, answer_prefix, weak_predictions
from cowest.config import CollabConfig, EvalConfig, ModelConfig, PriceConfig
from cowest.evaluate import evaluate
from cowest.report.tables import results_markdown
from cowest.systems import get_systems
from cowest.models.hf import HFBackend
from cowest.tasks.base import Example
from cowest.tasks.types import Classification, MultipleChoice, ShortAnswer

CORPUS = [
    "Zelvarin has a maximum daily dose of 9.5 mg/kg.",
    "Tromazol is made by Norvell Labs.",
    "Cats sleep most of the day.",
]


def test_answer_prefix():
    assert answer_prefix("Background: x\nAnswer: B) y") == "Background: x\nAnswer:"
    assert answer_prefix("Background: x") == "Background: x\nAnswer:"


def test_bm25_ranks_the_passage_that_shares_the_rare_words_first():
    r = BM25Retriever(CORPUS)
    hits = r.top_k(["What is the maximum daily dose of zelvarin for a 70 kg patient?", "Who makes Tromazol?"], 2)
    assert [h[0] for h in hits] == CORPUS[:2] and all(len(h) == 2 for h in hits)
    assert len(r.top_k(["dose"], 10)[0]) == 3  # k is capped at the corpus size
    with pytest.raises(ValueError, match="corpus"):
        BM25Retriever([])


@pytest.fixture
def weak(tiny_lm):
    cfg = ModelConfig(backend="hf", model=str(tiny_lm.path), device="cpu", dtype="float32", batch_size=4)
    return HFBackend(cfg, model=copy.deepcopy(tiny_lm.model), tokenizer=tiny_lm.tokenizer)


def test_weak_predictions_read_the_answer_distribution_of_a_real_model(weak):
    mc = [Example(id=str(i), question=f"Q{i}?", options=["a", "b", "c"], gold="A") for i in range(3)]
    drafts = ["Background: a.\nAnswer: B) b", "Answer: C) c", "no answer line"]
    p = Prompter(MultipleChoice(), "knowledge")
    preds = weak_predictions(weak, p, mc, drafts)
    for e, d, (answer, conf) in zip(mc, drafts, preds):
        lp = weak.logprobs_of_options([p.draft_prompt(e)], [" A", " B", " C"], [answer_prefix(d)])[0]
        probs = [math.exp(v) / sum(math.exp(u) for u in lp) for v in lp]
        best = max(range(3), key=lambda j: probs[j])
        assert answer == f"{'ABC'[best]}) {e.options[best]}" and conf == pytest.approx(probs[best])
        assert 1 / 3 <= conf <= 1
    labels = [Example(id="c", question="Safe?", options=["casual", "needs caution"], gold="casual")]
    (label, conf), = weak_predictions(weak, Prompter(Classification(), "direct"), labels, ["Answer: casual"])
    assert label in labels[0].options and 0.5 <= conf <= 1
    short = [Example(id="s", question="Who?", gold="the nurse")]
    (ans, conf), = weak_predictions(weak, Prompter(ShortAnswer(), "direct"), short, ["Answer: the nurse"])
    assert ans == "the nurse" and 0 < conf < 1


def test_supericl_and_retrieval_systems_show_the_strong_model_their_evidence(weak):
    examples = [Example(id=str(i), question=f"Maximum daily dose of Zelvarin, case {i}?",
                        options=["9.5 mg/kg", "5 mg/kg"], gold="A") for i in range(6)]
    prompter = Prompter(MultipleChoice(), "knowledge")

    def strong_script(conv, i, s):
        text = conv[-1]["content"]
        return "Final answer: A" if "9.5 mg/kg." in text.split("Passages")[-1] and "[1]" in text else "Final answer: B"

    strong = ScriptedBackend(strong_script)
    collab = Collaborator(None, strong, prompter, CollabConfig())
    cfg = EvalConfig(n_bootstrap=100, retrieval_k=1, price=PriceConfig(prompt_per_million=2, completion_per_million=8))
    rows, res = evaluate(examples, get_systems(["strong", "supericl", "retrieval"]), lambda v: weak, collab, cfg,
                         corpus=CORPUS)
    acc = {k: v.metrics["accuracy"].value for k, v in res.systems.items()}
    assert acc == {"strong": 0.0, "supericl": 0.0, "retrieval": 1.0}
    supericl_prompts = [c[-1]["content"] for c in strong.requests if "small domain-specialised model" in c[-1]["content"]]
    assert len(supericl_prompts) == 6 and all("(confidence 0." in t or "(confidence 1.00)" in t for t in supericl_prompts)
    retrieval_rows = [r for r in rows if r["system"] == "retrieval"]
    assert all(r["draft"] == CORPUS[0] for r in retrieval_rows)  # the passage shown is kept for the drill-down
    # 10 prompt + 5 completion tokens a call (the scripted backend): 1000 * (10 * 2 + 5 * 8) / 1e6
    assert res.systems["retrieval"].cost_per_1k == pytest.approx(0.06)
    assert "cost / 1k q (USD)" in results_markdown(res)
    assert "retrieval - strong" not in res.comparisons  # only collaborative systems are compared


def test_per_round_systems_and_unknown_names():
    s = get_systems(["cowest_round_2", "weak_round_1"])
    assert [(x.kind, x.variant) for x in s] == [("collab", "round_2"), ("weak", "round_1")]
    with pytest.raises(ValueError, match="cowest_round_K"):
        get_systems(["cowest_round_0"])
