"""Write the mmlu-nutrition example: MMLU's nutrition questions as a user's own files, with no fact file.

Reads the offline MMLU asset (`cowest models install mmlu`), keeps its 306 `nutrition` rows in file order and writes
the first 200 to nut_train.jsonl and the other 106 to nut_test.jsonl beside this script, each row as the asset holds
it (question, answer_a..answer_d, correct_answer, topic). Running it again rewrites the same bytes.

    python examples/mmlu-nutrition/make_data.py [OUT_DIR]   (default: beside this script)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from cowest import assets

HERE = Path(__file__).resolve().parent
TOPIC, N_TRAIN = "nutrition", 200


def main(out: Path = HERE) -> None:
    """Write the two files into `out`."""
    source = assets.install(["mmlu"], progress=False)["mmlu"]
    rows = [r for r in map(json.loads, source.read_text().splitlines()) if r.get("topic") == TOPIC]
    for name, part in (("nut_train.jsonl", rows[:N_TRAIN]), ("nut_test.jsonl", rows[N_TRAIN:])):
        (out / name).write_text("".join(json.dumps(r) + "\n" for r in part))
    print(f"{len(rows)} {TOPIC} rows: {N_TRAIN} to nut_train.jsonl, {len(rows) - N_TRAIN} to nut_test.jsonl")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
