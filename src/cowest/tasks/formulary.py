"""`formulary`: a synthetic proprietary-knowledge domain, the offline default demo.

Fictional internal drugs of fictional manufacturers, generated from the seed: each has a therapeutic class, a
maximum daily dose in mg per kg of body weight and one contraindication. A general strong model cannot know these
facts; a small weak model can learn them (SFT on the fact questions and the corpus), and the strong model does
the reasoning on top ("a 62 kg patient ... 62 kg x 3.5 mg/kg = 217 mg").

Splits (multiple choice, gold = letter):
- train: fact questions (every drug x fact x training wording) + `n_mining` reasoning questions, shuffled;
- test: `n_test` reasoning questions on the same drugs with (drug, weight) pairs / age sets never used in train;
- extra["sft_valid"]: fact questions in the `validation_wordings` wordings after the training ones: SFT keeps the
  epoch with the lowest loss on them (a validation slice, not the recall probe);
- extra["recall"]: fact questions in held-out wordings (never used in train or validation).
Every example carries metadata kind ("fact" | "reasoning"), fact, drug, fact_value (e.g. "3.5 mg/kg": what a
helpful draft states), background and reasoning (one sentence each, for the SFT draft targets); `explanation` =
background + " " + reasoning.

Knobs (`TaskConfig.options`): n_drugs (12), facts (["dose"]; "dose", "contraindication"), wordings_per_fact (6),
n_mining (48), n_test (48; `TaskConfig.n_test` also works), n_options (4), statements_per_fact (1),
validation_wordings (0), rationale_mix (0.0: the share of the mining questions' SFT rationales that state another
handbook fact of the drug instead of its dose), n_sft_reasoning (0: SFT learns from the mined reasoning questions;
N > 0: from N other reasoning questions, and the mined ones carry `sft: false`). The seed is `TaskConfig.seed`.
"""

from __future__ import annotations

import random
from typing import Any

from ..config import TaskConfig
from .base import LETTERS, Example, TaskData
from .registry import LoaderInfo, described
from .types import MultipleChoice

# ------------------------------------------------------------------ entity material (all invented)
NAME_HEADS = ["Vel", "Tram", "Zor", "Kal", "Brev", "Ost", "Pyl", "Dax", "Mir", "Ulv", "Sev", "Quor", "Nel",
              "Gav", "Rhen", "Yst"]
NAME_MIDS = ["o", "e", "a", "i", "exo", "ira", "ulo", "ane"]
NAME_TAILS = ["razine", "lid", "vant", "trel", "dronex", "pharin", "stine", "mivol", "quade", "tarone"]
CLASSES = ["anticoagulant", "antiemetic", "beta blocker", "antifungal", "anticonvulsant", "antihistamine",
           "proton pump inhibitor", "bronchodilator", "analgesic", "antiviral", "statin", "diuretic",
           "antibiotic", "antipsychotic", "muscle relaxant", "antidepressant"]
CONTRAINDICATIONS = ["active bleeding", "severe kidney failure", "a known sulfa allergy", "a history of seizures",
                     "liver cirrhosis", "asthma", "QT prolongation", "glaucoma", "myasthenia gravis",
                     "G6PD deficiency", "second-degree heart block", "porphyria", "hyperkalemia",
                     "severe hypotension", "lactic acidosis", "untreated hypothyroidism", "pancreatitis",
                     "atrial fibrillation", "bone marrow suppression", "heart failure"]
MANUFACTURERS = ["Zantrel Labs", "Orvanta Pharma", "Kelvex Therapeutics", "Miradyne Biosciences",
                 "Halcyra Health", "Novrin Pharmaceuticals"]
DOSES = [x / 2 for x in range(1, 21)]  # 0.5 ... 10 mg/kg/day, distinct per drug
WEIGHTS = list(range(40, 111, 2))  # even kg, so weight x (multiple of 0.5) is a whole number of mg
AGES = list(range(18, 91))

# ------------------------------------------------------------------ wordings
# Fact questions: the first `wordings_per_fact` are training wordings, the rest (>= 2) the recall probe's.
FACT_TEMPLATES = {
    "dose": [
        "What is the maximum daily dose of {drug} per kilogram of body weight?",
        "Per kg, how much {drug} may a patient receive per day at most?",
        "What daily dose limit per kg of body weight applies to {drug}?",
        "How many mg/kg per day is the upper limit for {drug}?",
        "According to the formulary, what is the maximum daily dose of {drug} in mg/kg?",
        "What is the weight-based daily ceiling for {drug}?",
        "Which per-kilogram daily maximum is listed for {drug}?",
        "{drug} should not exceed which daily dose per kg of body weight?",
        "In mg per kg per day, what is the most {drug} that may be given?",
        "What is the highest permitted daily amount of {drug} for each kilogram a patient weighs?",
    ],
    "contraindication": [
        "What is the contraindication of {drug}?",
        "In which patients is {drug} contraindicated?",
        "Which condition rules out the use of {drug}?",
        "{drug} must not be given to patients with which condition?",
        "According to the formulary, which condition is a contraindication for {drug}?",
        "Which patients should never be prescribed {drug}?",
        "What condition makes {drug} unsafe to give?",
        "Before prescribing {drug}, which condition must be excluded?",
        "Which medical condition is listed as a contraindication to {drug}?",
        "A patient with which condition may not take {drug}?",
    ],
}
# Reasoning questions ({w}: weight in kg; {ages}: "34, 51, 67 and 72").
REASONING_TEMPLATES = {
    "dose": [
        "A {w} kg patient is to receive {drug}. What is the highest total daily dose allowed?",
        "What is the maximum total daily dose of {drug} for a patient weighing {w} kg?",
        "A patient weighing {w} kg is started on {drug}. How many mg per day may they receive at most?",
        "{drug} is prescribed for a {w} kg adult. What total daily dose must not be exceeded?",
        "For a {w} kg patient, what is the daily ceiling for {drug} in mg?",
        "The ward pharmacist checks a {w} kg patient's {drug} order. What is the largest allowed total dose per day?",
    ],
    "contraindication": [
        "{drug} has been prescribed to patients aged {ages}. Which one must not receive it?",
        "Patients aged {ages} are each due a first dose of {drug}. Which patient must not be given it?",
        "A clinic plans to start {drug} in patients aged {ages}. For which patient is it contraindicated?",
        "Which of these patients, aged {ages}, must not receive {drug}?",
    ],
}
BACKGROUND = {
    # Only the fact itself: the weak model has few examples to learn it from (class and maker are in HANDBOOK).
    "dose": "{drug} has a maximum daily dose of {dose} mg/kg.",
    "contraindication": "{drug} is contraindicated in patients with {contra}.",
}
FACT_REASONING = {
    "dose": "So the per-kilogram daily limit for {drug} is {dose} mg/kg.",
    "contraindication": "So {drug} must not be given to patients with {contra}.",
}
REASONING = {
    "dose": "{w} kg x {dose} mg/kg = {total} mg.",
    "contraindication": "The {age}-year-old has {contra}, so they must not receive {drug}.",
}
# The reasoning line of a rationale that does not state the dose (no draft format shows it to the strong model
# unless the recipe asks for `cot`).
REASONING_UNKNOWN = "The dose limit has to be checked in the formulary."
FACT_OPTION = {"dose": "{dose} mg/kg", "contraindication": "{contra}"}
REASONING_OPTION = {"dose": "{total} mg", "contraindication": "The {age}-year-old with {contra}"}
# More wordings of each fact for the training corpus (the first is always BACKGROUND's sentence).
STATEMENTS = {
    "dose": [
        "The maximum daily dose of {drug} is {dose} mg/kg.",
        "{drug}: do not exceed {dose} mg/kg per day.",
        "Per the formulary, {drug} is capped at {dose} mg/kg per day.",
        "For {drug}, the daily limit is {dose} mg per kg of body weight.",
        "{drug} may be given at up to {dose} mg/kg daily.",
        "No patient should get more than {dose} mg/kg of {drug} in a day.",
        "{drug} dosing ceiling: {dose} mg/kg/day.",
    ],
    "contraindication": [
        "Do not give {drug} to patients with {contra}.",
        "Patients with {contra} must not receive {drug}.",
        "{drug}: contraindicated in {contra}.",
        "Per the formulary, {drug} is never used in patients with {contra}.",
        "{contra} rules out treatment with {drug}.",
        "{drug} must be avoided when a patient has {contra}.",
        "Before giving {drug}, exclude {contra}.",
    ],
}
HANDBOOK = ("{drug} (internal code {code}) is supplied by {manufacturer} and belongs to the company's "
            "{cls} range.")

DEFAULTS: dict[str, Any] = {"n_drugs": 12, "facts": ["dose"], "wordings_per_fact": 6, "n_mining": 48,
                            "n_test": 48, "n_options": 4, "statements_per_fact": 1, "validation_wordings": 0, "rationale_mix": 0.0, "n_sft_reasoning": 0}


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _settings(cfg: TaskConfig) -> dict[str, Any]:
    unknown = set(cfg.options) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"formulary: unknown options {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    s = {**DEFAULTS, **({"n_test": cfg.n_test} if cfg.n_test is not None else {}), **cfg.options}
    s["facts"] = [s["facts"]] if isinstance(s["facts"], str) else list(s["facts"])
    bad = [f for f in s["facts"] if f not in FACT_TEMPLATES]
    if bad or not s["facts"] or len(set(s["facts"])) != len(s["facts"]):
        raise ValueError(f"formulary: facts must be distinct names from {sorted(FACT_TEMPLATES)}, got {s['facts']}")
    max_drugs = min(len(NAME_HEADS), len(DOSES), len(CONTRAINDICATIONS), len(CLASSES))
    if not 2 <= s["n_options"] <= s["n_drugs"] <= max_drugs:
        raise ValueError(f"formulary: need 2 <= n_options <= n_drugs <= {max_drugs}")
    for fact in s["facts"]:
        most = len(FACT_TEMPLATES[fact]) - 2 - s["validation_wordings"]
        if s["validation_wordings"] < 0 or not 1 <= s["wordings_per_fact"] <= most:
            raise ValueError(f"formulary: wordings_per_fact + validation_wordings must be at most "
                             f"{len(FACT_TEMPLATES[fact]) - 2} (at least 2 wordings per fact are held out for the "
                             "recall probe), with wordings_per_fact >= 1")
    if not 1 <= s["statements_per_fact"] <= 1 + min(len(v) for v in STATEMENTS.values()):
        raise ValueError(f"formulary: statements_per_fact must be 1..{1 + min(len(v) for v in STATEMENTS.values())}")
    if not 0.0 <= s["rationale_mix"] <= 1.0:
        raise ValueError("formulary: rationale_mix must be in [0, 1]")
    if min(s["n_mining"], s["n_test"], s["n_sft_reasoning"]) < 0:
        raise ValueError("formulary: n_mining, n_test and n_sft_reasoning must be >= 0")
    rounds = sum(-(-s[k] // (s["n_drugs"] * len(s["facts"]))) for k in ("n_mining", "n_test", "n_sft_reasoning"))
    if rounds > len(WEIGHTS):  # each split asks about every (fact, drug) once per round; a weight once per drug
        raise ValueError("formulary: n_mining + n_test exceeds the distinct (drug, weight) questions available")
    return s


def _drugs(seed: int, n: int) -> list[dict]:
    rng = random.Random(f"formulary-entities-{seed}")
    # One head per drug, so no two names share a first syllable (easy to tell apart, distinct codes).
    names = [head + rng.choice(NAME_MIDS) + rng.choice(NAME_TAILS) for head in rng.sample(NAME_HEADS, n)]
    doses, contras, classes = rng.sample(DOSES, n), rng.sample(CONTRAINDICATIONS, n), rng.sample(CLASSES, n)
    return [
        {"drug": name, "class": cls, "dose_mg_per_kg": dose, "contraindication": contra,
         "manufacturer": rng.choice(MANUFACTURERS), "code": f"{name[:3].upper()}-{rng.randint(100, 999)}"}
        for name, cls, dose, contra in zip(names, classes, doses, contras)
    ]


def formulary_facts(cfg: TaskConfig) -> list[dict]:
    """The entity table (drug, class, dose_mg_per_kg, contraindication, manufacturer, code) for a config."""
    return _drugs(cfg.seed, _settings(cfg)["n_drugs"])


def _fields(d: dict, **extra: Any) -> dict[str, Any]:
    """Template fields for drug `d` (plus `extra`)."""
    return {"drug": d["drug"], "cls": d["class"], "manufacturer": d["manufacturer"], "dose": _fmt(d["dose_mg_per_kg"]),
            "contra": d["contraindication"], "article": "an" if d["manufacturer"][0] in "AEIOU" else "a",
            **extra}


class _Builder:
    """Makes multiple-choice examples; options are the gold drug's value plus other drugs', shuffled by the rng."""

    def __init__(self, drugs: list[dict], n_options: int, rng: random.Random):
        self.drugs, self.n_options, self.rng = drugs, n_options, rng
        self.seen: set[str] = set()

    def _choices(self, drug: dict) -> tuple[list[dict], int]:
        """The drugs behind the options (the gold drug and n_options-1 others) in shuffled order, gold index."""
        chosen = [drug, *self.rng.sample([d for d in self.drugs if d is not drug], self.n_options - 1)]
        self.rng.shuffle(chosen)
        return chosen, chosen.index(drug)

    def _example(self, ex_id: str, kind: str, fact: str, drug: dict, question: str, options: list[str],
                 gold: int, reasoning: str, extra: dict[str, Any]) -> Example:
        assert len(set(options)) == len(options) and question not in self.seen, (question, options)
        self.seen.add(question)
        background = BACKGROUND[fact].format(**_fields(drug))
        return Example(id=ex_id, question=question, options=options, gold=LETTERS[gold],
                       explanation=f"{background} {reasoning}",
                       metadata={"kind": kind, "fact": fact, "drug": drug["drug"], "background": background,
                                 "reasoning": reasoning, "fact_value": FACT_OPTION[fact].format(**_fields(drug)),
                                 **extra})

    def fact_question(self, ex_id: str, fact: str, drug: dict, template: str, wording: int) -> Example:
        chosen, gold = self._choices(drug)
        options = [FACT_OPTION[fact].format(**_fields(d)) for d in chosen]
        return self._example(ex_id, "fact", fact, drug, template.format(drug=drug["drug"]), options, gold,
                             FACT_REASONING[fact].format(**_fields(drug)), {"wording": wording})

    def dose_question(self, ex_id: str, drug: dict, w: int) -> Example:
        question = self.rng.choice(REASONING_TEMPLATES["dose"]).format(drug=drug["drug"], w=w)
        chosen, gold = self._choices(drug)
        totals = [_fmt(w * d["dose_mg_per_kg"]) for d in chosen]
        options = [REASONING_OPTION["dose"].format(total=t) for t in totals]
        reasoning = REASONING["dose"].format(**_fields(drug, w=w, total=totals[gold]))
        return self._example(ex_id, "reasoning", "dose", drug, question, options, gold, reasoning,
                             {"weight_kg": w, "total_mg": float(totals[gold])})

    def contraindication_question(self, ex_id: str, drug: dict) -> Example:
        while True:  # a fresh set of patient ages makes a fresh question
            ages = sorted(self.rng.sample(AGES, self.n_options))
            ages_text = ", ".join(map(str, ages[:-1])) + f" and {ages[-1]}"
            question = self.rng.choice(REASONING_TEMPLATES["contraindication"]).format(drug=drug["drug"],
                                                                                      ages=ages_text)
            if question not in self.seen:
                break
        chosen, gold = self._choices(drug)
        slots = self.rng.sample(ages, len(ages))  # which patient has which option's condition
        options = [REASONING_OPTION["contraindication"].format(**_fields(d, age=a)) for d, a in zip(chosen, slots)]
        reasoning = REASONING["contraindication"].format(**_fields(drug, age=slots[gold]))
        return self._example(ex_id, "reasoning", "contraindication", drug, question, options, gold, reasoning,
                             {"ages": ages, "patient_age": slots[gold]})


def _mix_rationales(examples: list[Example], drugs: list[dict], mix: float, seed: int) -> None:
    """Give a seeded share `mix` of the reasoning questions' SFT rationales another handbook fact of the same drug
    (its class, maker and code) instead of the dose, as explanations written for people rather than for the strong
    model often do: SFT then teaches the weak model the facts but not which one helps, which the feedback can."""
    if mix <= 0:
        return
    rng = random.Random(f"formulary-rationales-{seed}")
    by_name = {d["drug"]: d for d in drugs}
    for e in examples:
        if rng.random() < mix:
            d = by_name[e.metadata["drug"]]
            e.metadata["background"] = HANDBOOK.format(**_fields(d, code=d["code"]))
            e.metadata["reasoning"] = REASONING_UNKNOWN
            e.explanation = f"{e.metadata['background']} {REASONING_UNKNOWN}"


@described(LoaderInfo(
    summary="A synthetic drug formulary (the offline default): fictional facts no pretrained model knows.",
    knobs={
        "task.options.n_drugs": "drugs in the handbook (12)",
        "task.options.facts": "facts asked about: dose, contraindication ([dose])",
        "task.options.wordings_per_fact": "fact questions per drug and fact in training (6); later wordings form "
                                          "the recall probe",
        "task.options.validation_wordings": "wordings after the training ones for SFT's validation slice (0)",
        "task.options.n_mining / n_test": "reasoning questions in training (48) / test (48)",
        "task.options.n_options": "options per question (4)",
        "task.options.statements_per_fact": "corpus statements per drug and fact (1)",
        "task.options.rationale_mix": "share of the mining questions' SFT rationales that state another fact (0.0)",
        "task.options.n_sft_reasoning": "reasoning questions SFT learns from instead of the mined ones (0)",
    },
    notes=("Metadata kind (fact | reasoning) selects questions, e.g. mining.where: {kind: reasoning}.",),
))
def load_formulary(cfg: TaskConfig) -> TaskData:
    """Build the formulary task for `cfg` (see the module docstring for knobs and splits)."""
    s = _settings(cfg)
    drugs = _drugs(cfg.seed, s["n_drugs"])
    rng = random.Random(f"formulary-questions-{cfg.seed}")
    b = _Builder(drugs, s["n_options"], rng)
    facts, k = s["facts"], s["wordings_per_fact"]

    train = [b.fact_question(f"formulary-fact-{f}-{d['drug']}-w{j}", f, d, t, j)
             for f in facts for d in drugs for j, t in enumerate(FACT_TEMPLATES[f][:k])]
    v = k + s["validation_wordings"]
    sft_valid = [b.fact_question(f"formulary-valid-{f}-{d['drug']}-w{j}", f, d, t, j)
                 for f in facts for d in drugs for j, t in enumerate(FACT_TEMPLATES[f]) if k <= j < v]
    recall = [b.fact_question(f"formulary-recall-{f}-{d['drug']}-w{j}", f, d, t, j)
              for f in facts for d in drugs for j, t in enumerate(FACT_TEMPLATES[f]) if j >= v]

    # One shuffled weight list per drug: popping from it keeps (drug, weight) pairs unique across splits.
    weights = {d["drug"]: rng.sample(WEIGHTS, len(WEIGHTS)) for d in drugs}

    def reasoning_split(split: str, n: int) -> list[Example]:
        out: list[Example] = []
        order: list[tuple[str, dict]] = []
        for i in range(n):
            if not order:  # balanced: every (fact, drug) once per round, in a fresh order
                order = [(f, d) for f in facts for d in drugs]
                rng.shuffle(order)
            f, d = order.pop()
            ex_id = f"formulary-{split}-{f}-{i:04d}"
            if f == "dose":
                out.append(b.dose_question(ex_id, d, weights[d["drug"]].pop()))
            else:
                out.append(b.contraindication_question(ex_id, d))
        return out

    # Reasoning questions SFT learns from: the mined ones, or (n_sft_reasoning > 0) a separate set, so that mining
    # sees questions the weak model has not memorised, as at test time.
    taught = reasoning_split("sft", s["n_sft_reasoning"]) if s["n_sft_reasoning"] else []
    for e in taught:
        e.metadata["kind"] = "reasoning_sft"
    mining = reasoning_split("mining", s["n_mining"])
    if taught:
        for e in mining:
            e.metadata["sft"] = False
    _mix_rationales(taught or mining, drugs, s["rationale_mix"], cfg.seed)
    train += taught + mining
    test = reasoning_split("test", s["n_test"])
    rng.shuffle(train)  # any prefix mixes fact and reasoning questions

    n_st = s["statements_per_fact"]
    corpus = [t.format(**_fields(d)) for d in drugs for f in facts for t in [BACKGROUND[f], *STATEMENTS[f]][:n_st]]
    corpus += [HANDBOOK.format(**_fields(d, code=d["code"])) for d in drugs]
    return TaskData(name="formulary", type=MultipleChoice(), train=train, test=test, corpus=corpus,
                    extra={"recall": recall, **({"sft_valid": sft_valid} if sft_valid else {})})
