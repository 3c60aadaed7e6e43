"""Generate the rail-fares example: an invented regional rail network, its facts and its questions.

Standard library only, fixed seed: running it again rewrites the same bytes.

    python examples/rail-fares/make_data.py [OUT_DIR]

Writes facts.txt (a fare and a journey time per route, one fact a line), train.jsonl (one fact question per fact
plus N_TRAIN_REASONING reasoning questions), test.jsonl (TEST_PER_ROUTE reasoning questions per route) and
train_more.jsonl (train.jsonl plus MORE_PER_ROUTE reasoning questions per route, drawn after the others so the first
three files stay as they were) beside this script.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

SEED = 20240611
HERE = Path(__file__).resolve().parent
ROUTES_PER_LINE = 4      # 6 lines x 4 = 24 routes, 48 fact lines (a fare and a journey time per route)
TOWNS_PER_LINE = 7       # each line's routes join towns drawn from 7 of the towns below
N_TRAIN_REASONING = 60   # 24 routes get 2 reasoning questions in train, 12 of them a third one
TEST_PER_ROUTE = 4       # 24 routes x 4 = 96 test questions, the templates in turn
MORE_PER_ROUTE = 3       # train_more.jsonl: train.jsonl plus 24 x 3 = 72 reasoning questions (~60 mining candidates)

LINES = ["Kestrel Line", "Heron Line", "Curlew Line", "Plover Line", "Merlin Line", "Siskin Line"]
TOWNS = [
    "Amberwick", "Brannoch", "Caddisford", "Dunmarrow", "Fennrick", "Gorsemoor", "Hollinbray", "Ivelmouth",
    "Kestlebury", "Larkspire", "Merrowby", "Nethercaw", "Oakhallow", "Pellingrove", "Quillsby", "Rookhaven",
    "Saltmere", "Thistlecombe", "Umberfold", "Vennick", "Wrenmoor", "Zellbrook", "Brackenholm", "Coldharrow",
    "Drovensby", "Emberleigh", "Foxmarsh", "Greythorn", "Iverholt", "Lowenby", "Marshcombe", "Tollerby",
]

# The two facts of a route.
FARE_FACT = "On the {line}, a single ticket from {a} to {b} costs {fare} crowns."
TIME_FACT = "On the {line}, the journey from {a} to {b} takes {minutes} minutes."

# Fact questions: one per fact line, the wording rotating among four templates.
FARE_QUESTIONS = [
    "How much does a single ticket from {a} to {b} on the {line} cost?",
    "What is the fare for a single ticket on the {line} from {a} to {b}?",
    "On the {line}, what does a single ticket from {a} to {b} cost?",
    "What do you pay for one single ticket from {a} to {b} on the {line}?",
]
TIME_QUESTIONS = [
    "How long does the journey from {a} to {b} take on the {line}?",
    "On the {line}, how many minutes does the train take from {a} to {b}?",
    "What is the journey time from {a} to {b} on the {line}?",
    "How many minutes is the ride from {a} to {b} on the {line}?",
]

# Reasoning questions: one fact plus one arithmetic step.
#   fare_total: n single tickets -> n x fare (crowns)
#   time_total: n journeys       -> n x minutes
#   arrival:    departure time   -> departure + minutes (24-hour clock, same day)
REASONING = {
    "fare_total": [
        "A family buys {n} single tickets from {a} to {b} on the {line}. How many crowns do they pay in total?",
        "{n} colleagues each need a single ticket from {a} to {b} on the {line}. What is the total cost in crowns?",
        "A school group buys {n} single tickets on the {line} from {a} to {b}. How many crowns does it pay "
        "altogether?",
        "A traveller makes the trip from {a} to {b} on the {line} {n} times, buying a single ticket each time. How "
        "many crowns does she spend on tickets?",
    ],
    "time_total": [
        "A commuter rides the {line} from {a} to {b} {n} times this week. How many minutes does she spend on the "
        "train in total?",
        "A ticket inspector travels from {a} to {b} on the {line} {n} times. How many minutes of travel is that "
        "altogether?",
        "A courier takes the {line} from {a} to {b} on {n} separate days. How many minutes does he spend on board "
        "in total?",
    ],
    "arrival": [
        "A train leaves {a} for {b} at {dep} on the {line}. At what time does it arrive in {b}?",
        "On the {line}, the {dep} departure from {a} runs to {b}. At what time does it reach {b}?",
        "You board the {line} at {a} at {dep}, heading to {b}. What time do you arrive in {b}?",
    ],
}
TEMPLATES = list(REASONING)


def hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def build_network(rng: random.Random) -> list[dict]:
    """ROUTES_PER_LINE routes per line between TOWNS_PER_LINE of the line's towns; no pair of towns is served twice
    in the network."""
    used_pairs: set[frozenset] = set()
    routes = []
    for line in LINES:
        towns = rng.sample(TOWNS, TOWNS_PER_LINE)
        pairs = [(a, b) for i, a in enumerate(towns) for b in towns[i + 1:] if frozenset((a, b)) not in used_pairs]
        rng.shuffle(pairs)
        for a, b in pairs[:ROUTES_PER_LINE]:
            if rng.random() < 0.5:
                a, b = b, a
            used_pairs.add(frozenset((a, b)))
            routes.append({"line": line, "a": a, "b": b})
        assert len(pairs) >= ROUTES_PER_LINE, line
    # Fares and journey times: 2 numbers per route, all different, so no number answers two facts.
    fares = rng.sample(range(6, 100), len(routes))
    minutes = rng.sample([m for m in range(14, 181) if m not in fares], len(routes))
    for r, f, m in zip(routes, fares, minutes):
        r["fare"], r["minutes"] = f, m
        r["name"] = f"{r['line']}: {r['a']} - {r['b']}"
    return routes


def reasoning_row(rng: random.Random, route: dict, template: str, param: int) -> dict:
    wording = rng.choice(REASONING[template])
    slots = {"line": route["line"], "a": route["a"], "b": route["b"]}
    if template == "fare_total":
        value = param * route["fare"]
        gold, answers = str(value), [str(value), f"{value} crowns"]
        text = wording.format(n=param, **slots)
    elif template == "time_total":
        value = param * route["minutes"]
        gold, answers = str(value), [str(value), f"{value} minutes"]
        text = wording.format(n=param, **slots)
    else:
        arrival = param + route["minutes"]
        assert arrival < 24 * 60
        gold, answers = hhmm(arrival), [hhmm(arrival)]
        text = wording.format(dep=hhmm(param), **slots)
    return {"question": text, "answer": gold, "answers": answers, "kind": "reasoning", "route": route["name"],
            "template": template}


def departure_slots(route: dict) -> range:
    """Departures from 05:00 to 21:00 every 5 minutes whose arrival is still the same day."""
    return range(5 * 60, min(21 * 60, 24 * 60 - 1 - route["minutes"]) + 1, 5)


def more_reasoning(rng: random.Random, routes: list[dict], used: dict[int, tuple[set[int], set[int]]]) -> list[dict]:
    """MORE_PER_ROUTE more reasoning questions per route, each with a multiplier or departure no question of the route
    has yet (a multiplier question becomes an arrival one when the route's 8 multipliers are spent)."""
    rows = []
    for i, r in enumerate(routes):
        taken_n, taken_dep = used[i]
        free_n = [n for n in range(2, 10) if n not in taken_n]
        free_dep = [d for d in departure_slots(r) if d not in taken_dep]
        for k in range(MORE_PER_ROUTE):
            t = TEMPLATES[(i + 2 + k) % 3]
            if t != "arrival" and not free_n:
                t = "arrival"
            pool = free_dep if t == "arrival" else free_n
            param = pool.pop(rng.randrange(len(pool)))
            rows.append(reasoning_row(rng, r, t, param))
    rng.shuffle(rows)
    return [{"id": f"rf-more-{k:03d}", **row} for k, row in enumerate(rows, 1)]


def main(out: Path = HERE) -> None:
    rng = random.Random(SEED)
    routes = build_network(rng)

    facts, train, test = [], [], []
    for i, r in enumerate(routes):
        slots = {"line": r["line"], "a": r["a"], "b": r["b"]}
        facts.append(FARE_FACT.format(fare=r["fare"], **slots))
        facts.append(TIME_FACT.format(minutes=r["minutes"], **slots))
        fare = f"{r['fare']} crowns"
        train.append({"question": FARE_QUESTIONS[i % 4].format(**slots), "answer": fare,
                      "answers": [fare, str(r["fare"])], "kind": "fact", "route": r["name"], "template": "fare"})
        time = f"{r['minutes']} minutes"
        train.append({"question": TIME_QUESTIONS[(i + 1) % 4].format(**slots), "answer": time,
                      "answers": [time, str(r["minutes"])], "kind": "fact", "route": r["name"], "template": "time"})

    # Reasoning: per route, distinct multipliers across all its multiplier questions (train and test) and distinct
    # departure times, so no (route, multiplier) or (route, departure) combination of the test is seen in train.
    # Train: every route gets `base` questions, the templates in turn from (i + 1) % 3; `extra` routes get one more,
    # drawn in turn from the three classes i % 3, so the extra questions spread evenly over the templates too.
    # Test: TEST_PER_ROUTE questions per route, the templates in turn from i % 3.
    base, extra = divmod(N_TRAIN_REASONING, len(routes))
    classes = [[i for i in range(len(routes)) if i % 3 == c] for c in range(3)]
    for members in classes:
        rng.shuffle(members)
    interleaved = [i for group in zip(*classes) for i in group]
    extra_in_train = set(interleaved[:extra])
    used: dict[int, tuple[set[int], set[int]]] = {}
    for i, r in enumerate(routes):
        test_templates = [TEMPLATES[(i + k) % 3] for k in range(TEST_PER_ROUTE)]
        n_train = base + (i in extra_in_train)
        train_templates = [TEMPLATES[(i + 1 + k) % 3] for k in range(n_train)]
        needed = train_templates + test_templates
        n_arrival = needed.count("arrival")
        multipliers = rng.sample(range(2, 10), len(needed) - n_arrival)
        departures = rng.sample(departure_slots(r), n_arrival)
        used[i] = set(multipliers), set(departures)
        params = {"multiplier": iter(multipliers), "arrival": iter(departures)}
        for split, templates in ((train, train_templates), (test, test_templates)):
            for t in templates:
                param = next(params["arrival" if t == "arrival" else "multiplier"])
                split.append(reasoning_row(rng, r, t, param))

    rng.shuffle(test)
    for prefix, rows in (("rf-train", train), ("rf-test", test)):
        for k, row in enumerate(rows, 1):
            row_id = {"id": f"{prefix}-{k:03d}"}
            rows[k - 1] = {**row_id, **row}
    assert not {r["question"] for r in train} & {r["question"] for r in test}
    assert len({r["question"] for r in train + test}) == len(train) + len(test)
    assert len(routes) == len(LINES) * ROUTES_PER_LINE and len(facts) == 2 * len(routes)
    assert sum(r["kind"] == "reasoning" for r in train) == N_TRAIN_REASONING
    assert len(test) == TEST_PER_ROUTE * len(routes)
    more = train + more_reasoning(rng, routes, used)
    assert not {r["question"] for r in more} & {r["question"] for r in test}

    (out / "facts.txt").write_text("".join(f + "\n" for f in facts), encoding="utf-8")
    for name, rows in (("train.jsonl", train), ("test.jsonl", test), ("train_more.jsonl", more)):
        (out / name).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"facts.txt {len(facts)}  train.jsonl {len(train)}  test.jsonl {len(test)}  train_more.jsonl {len(more)}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
