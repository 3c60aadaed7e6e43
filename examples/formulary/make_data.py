"""Write the formulary (cowest's offline default domain) as a user's data files: questions, test questions, facts.

The drugs, doses and questions come from cowest's `formulary` task (fictional drugs whose maximum daily dose per kg
no pretrained model can know); this script only writes them in the generic `jsonl` loader's columns, so the demo and
the published runs go through the same path as any user's data (`cowest init`, "Bring your own data").

    python examples/formulary/make_data.py

Writes train.jsonl (fact and reasoning questions), test.jsonl (reasoning questions on unseen weights) and facts.txt
(the handbook's statements, one a line) beside this script, and the same for the demo's smaller handbook in demo/;
running it again rewrites the same bytes.
"""

from __future__ import annotations

import json
from pathlib import Path

from cowest.config import TaskConfig
from cowest.tasks.formulary import load_formulary

HERE = Path(__file__).resolve().parent
# One statement of each dose, as a user's fact file has one line a fact (cowest's formulary recipes repeat each
# dose in 8 wordings; here SFT's repeats do that work: task.sft_corpus).
OPTIONS = {"n_drugs": 8, "facts": ["dose"], "statements_per_fact": 1, "wordings_per_fact": 5, "n_mining": 96,
           "n_test": 120}
# The demo's handbook (`make demo`): four drugs, small enough to run the whole method in minutes on 2 CPU cores.
DEMO = {**OPTIONS, "n_drugs": 4, "wordings_per_fact": 3, "n_mining": 16, "n_test": 40}


def row(e) -> dict:
    """One question in the jsonl loader's columns; `fact_value` is the dose a helpful draft states."""
    m = e.metadata
    return {"id": e.id, "question": e.question, "options": e.options, "answer": e.gold,
            "kind": m["kind"], "drug": m["drug"], "fact_value": m["fact_value"]}


def write(folder: Path, options: dict) -> None:
    """The formulary built with `options` as train.jsonl, test.jsonl and facts.txt in `folder`."""
    data = load_formulary(TaskConfig(name="formulary", seed=0, options=options))
    folder.mkdir(exist_ok=True)
    for name, examples in (("train", data.train), ("test", data.test)):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(row(e)) + "\n" for e in examples), encoding="utf-8")
    (folder / "facts.txt").write_text("".join(f"{p}\n" for p in data.corpus), encoding="utf-8")
    print(f"{folder}: {len(data.train)} training and {len(data.test)} test questions, {len(data.corpus)} facts")


def main() -> None:
    write(HERE, OPTIONS)
    write(HERE / "demo", DEMO)


if __name__ == "__main__":
    main()
