"""Generate the travel-policy example: an invented company's travel and expense policy and questions about it.

Standard library only, fixed seed: running it again rewrites the same bytes.

    python examples/travel-policy/make_data.py

Writes facts.txt (N_CLAUSES clauses, one a line), train.jsonl (per clause FACT_PER_CLAUSE fact and
TRAIN_REASONING_PER_CLAUSE reasoning questions) and test.jsonl (per clause TEST_PER_CLAUSE reasoning questions) beside
this script. Every question is a classification with the two labels "reimbursable" / "not reimbursable"; its gold
follows from one clause's condition and threshold. Each clause gets as many questions of each label in each kind and
file. The clauses are the first N_CLAUSES of CLAUSE_PRIORITY, taken from the full 40-clause policy in CLAUSES.
"""

from __future__ import annotations

import json
import random
from fractions import Fraction
from pathlib import Path

SEED = 20240612
HERE = Path(__file__).resolve().parent
N_CLAUSES = 20                   # the first 20 topics of CLAUSE_PRIORITY (of 40 written), numbered in policy order
FACT_PER_CLAUSE = 2              # train, far from the threshold: one per label
TRAIN_REASONING_PER_CLAUSE = 4   # train, near the threshold: half per label
TEST_PER_CLAUSE = 6              # test, near the threshold: half per label, cases not seen in train
COMPANY = "Norvale Group"
YES, NO = "reimbursable", "not reimbursable"
LABELS = [YES, NO]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
MONTH_DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]


# ---------------------------------------------------------------- formatting


def hm(minutes: int) -> str:
    """A time of day, 24-hour clock."""
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def dur(minutes: int) -> str:
    """A duration in words: '5 hours 50 minutes', '6 hours', '45 minutes'."""
    h, m = divmod(minutes, 60)
    hours = f"{h} hour{'s' if h != 1 else ''}" if h else ""
    mins = f"{m} minute{'s' if m != 1 else ''}" if m else ""
    return " ".join(p for p in (hours, mins) if p) or "0 minutes"


def kg(tenths: int) -> str:
    return f"{tenths // 10} kg" if tenths % 10 == 0 else f"{tenths // 10}.{tenths % 10} kg"


def pl(n, word: str) -> str:
    """'1 day', '3 days'."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def th(amount) -> str:
    return f"{amount} thalers"


def date(day_of_year: int) -> str:
    """'14 March' for a day of a non-leap year counted from 0 = 1 January."""
    for month, n in zip(MONTHS, MONTH_DAYS):
        if day_of_year < n:
            return f"{day_of_year + 1} {month}"
        day_of_year -= n
    raise ValueError(day_of_year)


def doy(day: int, month: str) -> int:
    i = MONTHS.index(month)
    return sum(MONTH_DAYS[:i]) + day - 1


# ---------------------------------------------------------------- clauses

DIRECT_FRAMES = [
    "Under the {co} travel policy, is {subj} reimbursable?",
    "According to the {co} travel policy, is {subj} reimbursable or not reimbursable?",
    "Is {subj} reimbursable under the {co} travel policy?",
]
CLAUSE_FRAME = "Under clause {cid} of the {co} travel policy, is {subj} reimbursable?"
DERIVED_FRAMES = [
    "{scenario} Under the {co} travel policy, is {thing} reimbursable?",
    "{scenario} Is {thing} reimbursable according to the {co} travel policy?",
    "{scenario} Under the {co} travel policy, is {thing} reimbursable or not reimbursable?",
]
RELS = {"le": lambda v, t: v <= t, "lt": lambda v, t: v < t, "ge": lambda v, t: v >= t, "gt": lambda v, t: v > t}


class Numeric:
    """A clause whose condition is one number (an amount, a time, a weight, a count) against a threshold.

    subj(v): a noun phrase stating the value directly; derived: functions (rng, v) -> (scenario, actual) that state
    the value through one reasoning step (a sum, a difference of times, a per-night average ...); the gold follows
    from the actual value. Easy (fact) cases lie at least `far` from the threshold, hard ones within `near`.
    """

    def __init__(self, topic, text, threshold, rel, subj, thing, derived, near, far, lo, hi, step=1):
        self.topic, self.text, self.t, self.rel = topic, text, threshold, rel
        self.subj, self.thing, self.derived = subj, thing, derived
        self.near, self.far, self.lo, self.hi, self.step = near, far, lo, hi, step
        self.n_variants = 1 + len(derived)

    def label(self, actual) -> bool:
        return RELS[self.rel](actual, self.t)

    def case(self, rng, want: bool, hard: bool, variant: int):
        """(question text, key of the case, variant used) with the wanted label."""
        for _ in range(2000):
            if hard:
                v = rng.randrange(self.t - self.near, self.t + self.near + 1, self.step)
            else:
                v = rng.randrange(self.lo, self.hi + 1, self.step)
                if abs(v - self.t) < self.far:
                    continue
            if variant == 0:
                actual, text = v, rng.choice(DIRECT_FRAMES).format(co=COMPANY, subj=self.subj(v))
            else:
                scenario, actual = self.derived[variant - 1](rng, v)
                text = rng.choice(DERIVED_FRAMES).format(co=COMPANY, scenario=scenario, thing=self.thing)
            if self.label(actual) == want and (not hard or abs(actual - self.t) <= self.near):
                yield text, actual
        raise RuntimeError(f"no case for {self.topic} want={want} hard={hard} variant={variant}")


class Custom:
    """A clause with its own case generator: gen(rng, want, hard, variant) -> (question text, key)."""

    def __init__(self, topic, text, gen, n_variants):
        self.topic, self.text, self.gen, self.n_variants = topic, text, gen, n_variants

    def case(self, rng, want, hard, variant):
        for _ in range(2000):
            yield self.gen(rng, want, hard, variant)
        raise RuntimeError(f"no case for {self.topic}")


def times_apart(first: str, second: str, t0_lo: int = 0, t0_hi: int = 24 * 60 - 1):
    """A derived form for a duration v: two clock times v minutes apart on one day."""

    def make(rng, v):
        start = rng.randrange(max(t0_lo, 0), min(t0_hi, 24 * 60 - 1 - v) + 1, 5)
        return first.format(a=hm(start)) + " " + second.format(b=hm(start + v)), v

    return make


def offset_time(sentence: str, lo: int, hi: int, sign: int = 1):
    """A derived form for a time of day v: a reference time plus (sign=1) or minus (sign=-1) an offset."""

    def make(rng, v):
        d = rng.randrange(lo, hi + 1, 5)
        return sentence.format(ref=hm(v - sign * d), off=dur(d)), v

    return make


def per_unit(sentence: str, counts, exact: bool = True):
    """A derived form for a per-unit value v: a total over n units (the per-unit value is total / n)."""

    def make(rng, v):
        n = rng.choice(counts)
        total = v * n + (0 if exact else rng.randrange(0, n))
        colleagues = pl(n - 1, "colleague")
        return sentence.format(n=n, colleagues=colleagues, total=total), Fraction(total, n)

    return make


def share(sentence: str, bills, per: int = 100):
    """A derived form for a share v (percent, or per mille with per=1000): a part of a bill (share = part / bill)."""

    def make(rng, v):
        bill = rng.randrange(*bills)
        part = round(bill * v / per)
        return sentence.format(part=part, bill=bill), Fraction(per * part, bill)

    return make


def summed(sentence: str, min_part: int):
    """A derived form for a total v: two parts that add up to it."""

    def make(rng, v):
        a = rng.randrange(min_part, v - min_part + 1)
        return sentence.format(a=a, b=v - a), v

    return make


def day_span(sentence: str, inclusive: bool, month: str = "May"):
    """A derived form for a number of days or nights v: two dates in one month."""

    def make(rng, v):
        span = v - 1 if inclusive else v
        d1 = rng.randrange(1, 31 - span)
        return sentence.format(d1=d1, d2=d1 + span, month=month), v

    return make


def weeks_days(sentence: str):
    """A derived form for a number of days v: 'w weeks and d days'."""

    def make(rng, v):
        w, d = divmod(v, 7)
        if w == 0:
            return sentence.format(span=f"{d} day{'s' if d != 1 else ''}"), v
        if d == 0:
            return sentence.format(span=f"exactly {pl(w, 'week')}"), v
        return sentence.format(span=f"{w} week{'s' if w != 1 else ''} and {d} day{'s' if d != 1 else ''}"), v

    return make


# -- custom clauses


def taxi_gen(rng, want, hard, variant):
    """Clause: taxi only between 22:00 and 06:00, or with equipment heavier than 15 kg (no case sits on a bound).

    `variant` is not used: each hard case draws which condition decides it."""
    night = lambda t: t > 22 * 60 or t < 6 * 60  # noqa: E731
    for _ in range(1000):
        if not hard:
            t = rng.randrange(23 * 60, 24 * 60, 5) if want else rng.randrange(10 * 60, 17 * 60, 5)
            w = 0
        else:  # the time decides (near a bound of the window), the weight decides (daytime), or either may
            evening, morning = rng.randrange(20 * 60 + 30, 23 * 60 + 30, 5), rng.randrange(4 * 60 + 30, 7 * 60 + 30, 5)
            edge = rng.choice([evening, morning])
            near_15 = rng.randrange(100, 201, 5)
            t, w = rng.choice([(edge, 0), (rng.randrange(8 * 60, 20 * 60, 5), near_15), (edge, near_15)])
        if t in (22 * 60, 6 * 60) or w == 150:
            continue
        if (night(t) or w > 150) != want:
            continue
        if not hard:
            subj = f"a taxi fare for a journey starting at {hm(t)} with no equipment"
            return rng.choice(DIRECT_FRAMES).format(co=COMPANY, subj=subj), (t, w)
        load = "no equipment" if w == 0 else f"a {kg(w)} equipment case"
        scenario = f"An employee takes a taxi for a journey starting at {hm(t)}, carrying {load}."
        return rng.choice(DERIVED_FRAMES).format(co=COMPANY, scenario=scenario, thing="the taxi fare"), (t, w)
    raise RuntimeError("taxi")


def fuel_gen(rng, want, hard, variant):
    """Clause: hire-car fuel only on working days, Monday to Friday."""
    day = rng.choice([d for d in range(7) if (d < 5) == want])
    if not hard:
        subj = f"fuel for a hire car bought on a {DAYS[day]}"
        return rng.choice(DIRECT_FRAMES).format(co=COMPANY, subj=subj), DAYS[day]
    off = rng.choice([1, 2, 3])
    if rng.random() < 0.5:
        when = f"{['the day', 'two days', 'three days'][off - 1]} after a {DAYS[(day - off) % 7]}"
    else:
        when = f"{['the day', 'two days', 'three days'][off - 1]} before a {DAYS[(day + off) % 7]}"
    scenario = f"An employee on a business trip fills up a hire car {when}."
    text = rng.choice(DERIVED_FRAMES).format(co=COMPANY, scenario=scenario, thing="the fuel")
    return text, when


def tyres_gen(rng, want, hard, variant):
    """Clause: winter-tyre surcharge only for hires starting 1 November to 31 March, both included."""
    winter = lambda d: d >= doy(1, "November") or d <= doy(31, "March")  # noqa: E731
    for _ in range(1000):
        if hard:
            edge = rng.choice([doy(31, "March"), doy(1, "November")])
            d = edge + rng.randrange(-9, 10)
        else:
            d = rng.randrange(doy(1, "December"), 365) if want else rng.randrange(doy(1, "May"), doy(1, "October"))
        if winter(d) == want:
            break
    if hard and variant == 1:
        base_off = rng.choice([1, 2, 3])
        scenario = (f"An employee hires a car with winter tyres; the hire starts {base_off} day"
                    f"{'s' if base_off > 1 else ''} after {date((d - base_off) % 365)}.")
        return rng.choice(DERIVED_FRAMES).format(co=COMPANY, scenario=scenario, thing="the winter-tyre surcharge"), d
    subj = f"a winter-tyre surcharge on a hire car whose hire starts on {date(d)}"
    return rng.choice(DIRECT_FRAMES).format(co=COMPANY, subj=subj), d


def change_gen_derived(rng, v):
    """Flight change v minutes before departure, as weekday + clock times."""
    for _ in range(100):
        dep_day = rng.randrange(2, 5)
        dep = dep_day * 1440 + rng.randrange(6 * 60, 21 * 60, 5)
        ch = dep - v
        if ch >= 0 and 8 * 60 <= ch % 1440 <= 18 * 60:
            return (f"On a {DAYS[ch // 1440]} at {hm(ch % 1440)} an employee changes a flight that departs on the "
                    f"{DAYS[dep_day]} of the same week at {hm(dep % 1440)}."), v
    raise RuntimeError("change")


def overnight_arrival(rng, v):
    """An arrival time v the morning after an overnight flight: evening departure + flight time."""
    for _ in range(100):
        f = rng.randrange(300, 601, 5)
        dep = v + 1440 - f
        if 20 * 60 <= dep <= 23 * 60 + 55:
            return (f"An employee's overnight flight leaves at {hm(dep)} and its flight time is {dur(f)}, with no "
                    "change of time zone."), v
    raise RuntimeError("overnight")


def discounted(rng, v):
    """A fee v reached as a list price less a member discount."""
    for _ in range(100):
        p = rng.choice([10, 20, 25])
        list_price = Fraction(v * 100, 100 - p)
        if list_price.denominator == 1:
            return (f"The list price of a conference registration is {list_price} thalers, and Norvale employees get "
                    f"a {p} percent member discount on it."), v
    raise RuntimeError("discount")


def split_distance(rng, v):
    """Nearest station at distance v: two stations, the other one farther."""
    other = v + rng.randrange(6, 40)
    a, b = rng.sample(["Corvale", "Lintry", "Haskett", "Morrow Bridge", "Tavish", "Ostleigh"], 2)
    pair = [(a, v), (b, other)]
    rng.shuffle(pair)
    return (f"A client site is {pair[0][1]} km from {pair[0][0]} station and {pair[1][1]} km from {pair[1][0]} "
            "station, the only two railway stations in the region."), v


def weekly_journeys(rng, v):
    for _ in range(100):
        per_week = rng.choice([2, 3])
        weeks, extra = divmod(v, per_week)
        if 1 <= weeks <= 4 and extra <= 2:
            more = "" if extra == 0 else f", plus {extra} more in the last week"
            return (f"An employee makes {per_week} business rail journeys a week for {pl(weeks, 'week')} of the "
                    f"month{more}."), v
    raise RuntimeError("weekly")


def onward(rng, v):
    """A venue distance v as two road legs."""
    a = rng.randrange(20, v - 15)
    return (f"A meeting venue lies {v - a} km beyond the town of Fenwick, and Fenwick is {a} km from the employee's "
            "home office on the same road."), v


S = "{cid} of the " + COMPANY + " travel policy:"
# The full policy (40 clauses); main() keeps the first N_CLAUSES topics of CLAUSE_PRIORITY.
CLAUSES = [
    # 1 Air travel
    ("1", Numeric(
        "economy flight booked in advance",
        f"Clause {S} economy flights are reimbursed only when they are booked at least 14 days before the day of "
        "departure. The booking date is the date on the airline's confirmation, so a flight booked 13 days or fewer "
        "before departure is refused.",
        14, "ge", lambda v: f"an economy flight booked {pl(v, 'day')} before departure", "the flight",
        [day_span("An employee books an economy flight on {d1} {month} for a flight departing on {d2} {month}.",
                  inclusive=False)],
        near=5, far=6, lo=1, hi=45)),
    ("1", Numeric(
        "business-class flight",
        f"Clause {S} a business-class ticket is reimbursed only for a flight whose scheduled flight time is longer "
        "than 6 hours. For any flight of 6 hours or less the employee must fly economy, and the business-class "
        "ticket is refused.",
        360, "gt", lambda v: f"a business-class ticket for a flight with a scheduled flight time of {dur(v)}",
        "the business-class ticket",
        [times_apart("A business-class flight is scheduled to leave at {a}", "and to land at {b} in the same time "
                     "zone.", 6 * 60, 12 * 60)],
        near=45, far=150, lo=60, hi=780, step=5)),
    ("1", Numeric(
        "checked bag fee",
        f"Clause {S} the fee for one checked bag is reimbursed when the bag weighs no more than 23 kg. Excess-weight "
        "fees for a heavier bag are refused in full, and employees should send heavy equipment by the company "
        "courier instead.",
        230, "le", lambda v: f"the checked-bag fee for a bag weighing {kg(v)}", "the checked-bag fee",
        [lambda rng, v: ((lambda a: (f"An employee checks one bag holding a sample case of {kg(a)} and {kg(v - a)} "
                                     "of clothes.", v))(rng.randrange(60, 140)))],
        near=20, far=60, lo=50, hi=400)),
    ("1", Numeric(
        "airport lounge pass",
        f"Clause {S} an airport lounge pass is reimbursed only when the wait between two connecting flights is at "
        "least 4 hours. The wait counts from the scheduled landing of the first flight to the scheduled departure "
        "of the second, and shorter waits do not qualify.",
        240, "ge", lambda v: f"an airport lounge pass for a wait of {dur(v)} between connecting flights",
        "the lounge pass",
        [times_apart("An employee's first flight is scheduled to land at {a},", "and the connecting flight is "
                     "scheduled to depart at {b}.", 6 * 60, 16 * 60)],
        near=40, far=100, lo=45, hi=480, step=5)),
    ("1", Numeric(
        "flight change fee",
        f"Clause {S} a fee for changing a flight is reimbursed only when the change is made at least 48 hours before "
        "the original departure time. Fees for changes made within the last 48 hours before departure are the "
        "employee's own cost and are refused.",
        2880, "ge", lambda v: f"a flight change fee for a change made {dur(v)} before departure",
        "the change fee", [change_gen_derived],
        near=420, far=1440, lo=120, hi=7 * 1440, step=30)),
    # 2 Rail travel
    ("2", Numeric(
        "first-class rail ticket",
        f"Clause {S} first-class rail tickets are reimbursed only for journeys longer than 250 km, measured one way "
        "as printed on the ticket. For a journey of 250 km or less only standard class is allowed, and a "
        "first-class ticket is refused.",
        250, "gt", lambda v: f"a first-class rail ticket for a one-way journey of {v} km", "the first-class ticket",
        [summed("An employee takes a first-class rail journey in two legs on one ticket, {a} km and then {b} km, "
                "one way.", 60)],
        near=15, far=60, lo=40, hi=600)),
    ("2", Numeric(
        "sleeper cabin",
        f"Clause {S} a sleeper cabin on a night train is reimbursed only when the train departs at 21:00 or later. "
        "For trains that leave before 21:00 the employee must book a seat, and the sleeper supplement is refused.",
        21 * 60, "ge", lambda v: f"a sleeper cabin on a night train departing at {hm(v)}", "the sleeper cabin",
        [offset_time("An employee's meeting ends at {ref}, and the night train on which she books a sleeper "
                     "cabin departs {off} later.", 40, 150)],
        near=45, far=120, lo=17 * 60, hi=23 * 60 + 55, step=5)),
    ("2", Numeric(
        "monthly rail pass",
        f"Clause {S} a monthly rail pass is reimbursed only when the employee makes at least 8 business rail "
        "journeys within that month. With fewer journeys the single tickets are reimbursed instead, and the pass "
        "itself is refused.",
        8, "ge", lambda v: f"a monthly rail pass for a month with {pl(v, 'business rail journey')}",
        "the monthly rail pass",
        [weekly_journeys], near=4, far=4, lo=1, hi=20)),
    ("2", Numeric(
        "on-board rail upgrade",
        f"Clause {S} an upgrade bought on board a train is reimbursed when it costs no more than 30 thalers. A more "
        "expensive on-board upgrade is refused entirely, because such upgrades must be booked in advance through "
        "the travel desk.",
        30, "le", lambda v: f"an on-board train upgrade costing {th(v)}", "each upgrade",
        [per_unit("An employee and {colleagues} each buy the same upgrade on board a train, paying "
                  "{total} thalers together.", [2, 3, 4])],
        near=5, far=12, lo=5, hi=80)),
    # 3 Ground transport
    ("3", Custom(
        "taxi fare",
        f"Clause {S} taxi fares are reimbursed only for journeys that start between 22:00 and 06:00, or when the "
        "employee carries equipment heavier than 15 kg. At any other time employees must use public transport, "
        "and taxi receipts are refused.",
        taxi_gen, 1)),
    ("3", Numeric(
        "airport parking",
        f"Clause {S} airport parking is reimbursed for stays of at most 5 calendar days, counting both the day the "
        "car enters and the day it leaves the car park. For longer trips employees must take the train or bus to "
        "the airport, and parking is refused.",
        5, "le", lambda v: f"airport parking for {pl(v, 'calendar day')}", "the airport parking",
        [day_span("An employee's car enters the airport car park on {d1} {month} and leaves it on {d2} {month}.",
                  inclusive=True, month="June")],
        near=4, far=4, lo=1, hi=16)),
    ("3", Numeric(
        "bicycle or e-scooter hire",
        f"Clause {S} hire of a bicycle or e-scooter is reimbursed for rides lasting at most 45 minutes. Longer rides "
        "are refused in full, since for longer distances employees are expected to use public transport.",
        45, "le", lambda v: f"an e-scooter hire for a ride of {v} minutes", "the hire",
        [times_apart("An employee unlocks a hire bicycle at {a}", "and returns it at {b}.", 7 * 60, 19 * 60)],
        near=10, far=20, lo=5, hi=120)),
    ("3", Numeric(
        "hire car and distance to a station",
        f"Clause {S} a hire car is reimbursed only when the destination lies more than 40 km from the nearest "
        "railway station. If the destination is 40 km or less from a station, the employee must travel by train "
        "and local transport, and the hire car is refused.",
        40, "gt", lambda v: f"a hire car for a destination {v} km from the nearest railway station", "a hire car",
        [split_distance], near=8, far=20, lo=3, hi=120)),
    ("3", Numeric(
        "private car mileage",
        f"Clause {S} mileage for driving a private car is reimbursed for trips of at most 300 km one way. For a "
        "longer one-way distance the employee must travel by train, and the mileage claim is refused in full.",
        300, "le", lambda v: f"private car mileage for a trip of {v} km one way", "the mileage claim",
        [lambda rng, v: (f"An employee drives a private car to a customer and back, {2 * v} km in total, the same "
                         "distance each way.", v)],
        near=20, far=80, lo=30, hi=700)),
    # 4 Accommodation
    ("4", Numeric(
        "hotel room rate",
        f"Clause {S} hotel rooms are reimbursed when the room rate is at most 140 thalers per night, excluding "
        "breakfast. A room whose nightly rate is higher is refused entirely, not reduced to the limit, so employees "
        "should book through the travel desk.",
        140, "le", lambda v: f"a hotel room whose rate, excluding breakfast, is {th(v)} per night", "the hotel room",
        [per_unit("An employee stays {n} nights in a hotel, and the room bill, excluding breakfast, is {total} "
                  "thalers, the same rate every night.", [2, 3, 4, 5])],
        near=15, far=40, lo=50, hi=320)),
    ("4", Numeric(
        "overnight stay and venue distance",
        f"Clause {S} an overnight hotel stay is reimbursed only when the meeting venue is more than 80 km from the "
        "employee's home office. For venues 80 km away or closer the employee is expected to travel back the same "
        "day, and the hotel is refused.",
        80, "gt", lambda v: f"an overnight hotel stay for a meeting venue {v} km from the employee's home office",
        "an overnight hotel stay", [onward], near=10, far=30, lo=10, hi=300)),
    ("4", Numeric(
        "early check-in fee",
        f"Clause {S} an early check-in fee is reimbursed only when the employee's overnight flight or night train "
        "arrives before 08:00. For any arrival at 08:00 or later the employee must wait for the normal check-in "
        "time, and the fee is refused.",
        8 * 60, "lt", lambda v: f"an early hotel check-in fee after a night train arriving at {hm(v)}",
        "the early check-in fee", [overnight_arrival], near=45, far=120, lo=4 * 60, hi=12 * 60, step=5)),
    ("4", Numeric(
        "late check-out fee",
        f"Clause {S} a late check-out fee is reimbursed only when the employee's return train or flight departs "
        "after 18:00 on the day of check-out. If it departs at 18:00 or earlier the room must be vacated at the "
        "normal time, and the fee is refused.",
        18 * 60, "gt", lambda v: f"a late hotel check-out fee on a day whose return flight departs at {hm(v)}",
        "the late check-out fee",
        [offset_time("On the day of check-out an employee's last meeting ends at {ref}, and the return train leaves "
                     "{off} later.", 60, 180)],
        near=45, far=120, lo=11 * 60, hi=23 * 60, step=5)),
    ("4", Numeric(
        "serviced apartment",
        f"Clause {S} a serviced apartment is reimbursed instead of a hotel only for stays of at least 7 nights in the "
        "same city. For shorter stays employees must use a hotel, and apartment invoices are refused even when they "
        "are cheaper.",
        7, "ge", lambda v: f"a serviced apartment for a stay of {pl(v, 'night')}", "the serviced apartment",
        [day_span("An employee checks in to a serviced apartment on {d1} {month} and checks out on {d2} {month}.",
                  inclusive=False, month="March")],
        near=4, far=4, lo=1, hi=21)),
    ("4", Numeric(
        "hotel internet charge",
        f"Clause {S} hotel internet charges are reimbursed up to 12 thalers per day of the stay. When the daily "
        "charge is higher, the whole internet charge is refused, and the employee should use the mobile data "
        "allowance instead.",
        12, "le", lambda v: f"a hotel internet charge of {th(v)} per day", "the internet charge",
        [per_unit("An employee pays {total} thalers for hotel internet over a {n}-day stay, the same charge each "
                  "day.", [2, 3, 4, 5, 6])],
        near=5, far=7, lo=2, hi=35)),
    # 5 Meals
    ("5", Numeric(
        "breakfast allowance",
        f"Clause {S} the breakfast allowance is paid only when the employee leaves home for a business trip before "
        "07:00. Employees who leave at 07:00 or later are expected to eat breakfast at home, so the allowance is "
        "refused.",
        7 * 60, "lt", lambda v: f"the breakfast allowance for an employee who leaves home at {hm(v)}",
        "the breakfast allowance",
        [offset_time("An employee leaves home {off} before her {ref} train on a business trip.", 25, 60, sign=-1)],
        near=40, far=90, lo=4 * 60, hi=10 * 60, step=5)),
    ("5", Numeric(
        "dinner allowance",
        f"Clause {S} the dinner allowance is paid only when the employee gets home from a business trip after 20:00. "
        "If the employee is home at 20:00 or earlier the evening meal is a private cost, and the allowance is "
        "refused.",
        20 * 60, "gt", lambda v: f"the dinner allowance for an employee who gets home at {hm(v)}",
        "the dinner allowance",
        [offset_time("Returning from a business trip, an employee's train arrives at {ref}, and the drive home from "
                     "the station takes {off}.", 20, 60)],
        near=40, far=90, lo=16 * 60, hi=23 * 60 + 30, step=5)),
    ("5", Numeric(
        "client lunch per person",
        f"Clause {S} a business lunch with clients is reimbursed when the bill comes to at most 45 thalers per "
        "person, counting every person at the table. If the bill per person is higher, the whole bill is refused.",
        45, "le", lambda v: f"a client lunch costing {th(v)} per person", "the lunch bill",
        [per_unit("An employee hosts a business lunch for {n} people in all, and the bill is {total} thalers.",
                  [3, 4, 5, 6], exact=False)],
        near=5, far=12, lo=10, hi=110)),
    ("5", Numeric(
        "team dinner",
        f"Clause {S} a team dinner during a business trip is reimbursed only when at least 8 employees attend. "
        "Dinners with fewer employees are covered by the daily allowance instead, and the restaurant bill is "
        "refused.",
        8, "ge", lambda v: f"a team dinner attended by {pl(v, 'employee')}", "the team dinner",
        [lambda rng, v: ((lambda k: (f"A team of {v + k} employees on a business trip plans a dinner, but {k} of "
                                     f"them cannot come.", v))(rng.randrange(1, 5)))],
        near=5, far=5, lo=1, hi=20)),
    ("5", Numeric(
        "drinks share of a client dinner",
        f"Clause {S} drinks on a client dinner bill are reimbursed only when they make up no more than 20 percent "
        "of the total bill. When drinks exceed that share, the drinks are refused and only the food is reimbursed.",
        20, "le", lambda v: f"a drinks bill at a client dinner that makes up {v} percent of the total bill",
        "the drinks bill",
        [share("A client dinner bill comes to {bill} thalers in total, of which {part} thalers are drinks.",
               (120, 400))],
        near=4, far=8, lo=2, hi=50)),
    ("5", Numeric(
        "coffee for a client meeting",
        f"Clause {S} coffee and snacks bought for a client meeting are reimbursed up to 15 thalers per meeting. A "
        "receipt above 15 thalers is refused entirely, because longer client meetings should be held as a business "
        "lunch instead.",
        15, "le", lambda v: f"a coffee receipt of {th(v)} for a client meeting", "the coffee receipt",
        [summed("For a client meeting an employee buys coffees for {a} thalers and pastries for {b} thalers on one "
                "receipt.", 3)],
        near=4, far=6, lo=3, hi=40)),
    # 6 Cars
    ("6", Custom(
        "hire-car fuel on working days",
        f"Clause {S} fuel for a hire car is reimbursed only when it is bought on a working day, Monday to Friday. "
        "Fuel bought on a Saturday or a Sunday is treated as private use of the car and is refused.",
        fuel_gen, 1)),
    ("6", Numeric(
        "hire-car excess waiver",
        f"Clause {S} the optional excess-waiver insurance on a hire car is reimbursed when it costs at most 18 "
        "thalers per day. A more expensive waiver is refused in full, as the company's own fleet insurance already "
        "covers larger damage.",
        18, "le", lambda v: f"a hire-car excess waiver costing {th(v)} per day", "the excess waiver",
        [per_unit("An employee buys an excess waiver for a {n}-day car hire and pays {total} thalers for it, the "
                  "same each day.", [2, 3, 4, 5, 6, 7])],
        near=5, far=8, lo=3, hi=45)),
    ("6", Numeric(
        "hire-car wash",
        f"Clause {S} a car wash for a hire car is reimbursed only when the car has been hired for more than 10 days. "
        "For shorter hires the rental company cleans the car on return, so car-wash receipts are refused.",
        10, "gt", lambda v: f"a car wash for a hire car that has been hired for {pl(v, 'day')}", "the car wash",
        [weeks_days("An employee washes a hire car that she has had for {span}.")],
        near=4, far=5, lo=1, hi=30)),
    ("6", Custom(
        "winter-tyre surcharge",
        f"Clause {S} a winter-tyre surcharge on a hire car is reimbursed only for hires that start between 1 "
        "November and 31 March, both dates included. Outside that period the surcharge is refused, because rental "
        "companies fit summer tyres as standard.",
        tyres_gen, 2)),
    # 7 Other expenses
    ("7", Numeric(
        "visa fee",
        f"Clause {S} visa fees are reimbursed for visas valid for at most 90 days. Fees for visas with a longer "
        "validity are refused, because employees who need long-stay visas must apply through the HR mobility team.",
        90, "le", lambda v: f"the fee for a visa valid for {pl(v, 'day')}", "the visa fee",
        [weeks_days("An employee pays for a visa that is valid for {span}.")],
        near=12, far=30, lo=7, hi=365)),
    ("7", Numeric(
        "mobile roaming charges",
        f"Clause {S} mobile roaming charges are reimbursed up to 20 thalers per day abroad on average. If the "
        "average daily charge is higher, the whole roaming bill is refused, and the employee should buy a local "
        "data package next time.",
        20, "le", lambda v: f"a roaming bill that averages {th(v)} per day abroad", "the roaming bill",
        [per_unit("After {n} days abroad an employee's roaming bill comes to {total} thalers.", [3, 4, 5, 6, 7],
                  exact=False)],
        near=4, far=8, lo=3, hi=60)),
    ("7", Numeric(
        "laundry",
        f"Clause {S} laundry costs are reimbursed only on business trips of 10 nights or more away from home. On "
        "shorter trips employees are expected to pack enough clothing, and laundry receipts are refused.",
        10, "ge", lambda v: f"laundry on a business trip of {pl(v, 'night')} away from home", "laundry",
        [day_span("An employee leaves home on a business trip on {d1} {month} and comes back on {d2} {month}.",
                  inclusive=False, month="July")],
        near=4, far=5, lo=1, hi=25)),
    ("7", Numeric(
        "extra travel insurance",
        f"Clause {S} extra travel insurance is reimbursed only for trips that last more than 30 days. Shorter trips "
        "are already covered by the company's annual travel insurance, so any extra insurance bought for them is "
        "refused.",
        30, "gt", lambda v: f"extra travel insurance for a trip of {pl(v, 'day')}", "the extra insurance",
        [weeks_days("An employee buys extra travel insurance for a trip lasting {span}.")],
        near=5, far=12, lo=3, hi=90)),
    ("7", Numeric(
        "gift for a host",
        f"Clause {S} a gift for a foreign business host is reimbursed when it costs at most 35 thalers. A more "
        "expensive gift is refused in full, because gifts above that value must be approved in advance by the "
        "compliance office.",
        35, "le", lambda v: f"a gift for a foreign business host costing {th(v)}", "the gift",
        [summed("An employee buys a gift for a foreign business host: a book for {a} thalers and a box of tea for "
                "{b} thalers, given together.", 6)],
        near=6, far=12, lo=8, hi=90)),
    ("7", Numeric(
        "conference registration fee",
        f"Clause {S} conference registration fees are reimbursed up to 600 thalers per conference. A higher fee is "
        "refused in full; employees who wish to attend a more expensive conference must use their personal "
        "training budget.",
        600, "le", lambda v: f"a conference registration fee of {th(v)}", "the registration fee",
        [discounted], near=60, far=150, lo=100, hi=1500, step=15)),
    ("7", Numeric(
        "restaurant or taxi tip",
        f"Clause {S} tips at restaurants and for taxis are reimbursed when the tip is no more than 10 percent of the "
        "bill. A larger tip is refused entirely, not reduced, so employees should keep tips within the limit.",
        10, "le", lambda v: f"a restaurant tip of {v} percent of the bill", "the tip",
        [share("An employee leaves a tip of {part} thalers on a restaurant bill of {bill} thalers.", (40, 200))],
        near=4, far=5, lo=2, hi=25)),
    ("7", Numeric(
        "Saturday-night hotel stay",
        f"Clause {S} an extra hotel night on a Saturday is reimbursed only when staying over the weekend lowers the "
        "return airfare by more than 150 thalers. If the saving is 150 thalers or less, the employee must fly home "
        "on Friday and the extra night is refused.",
        150, "gt", lambda v: f"an extra Saturday hotel night that lowers the return airfare by {th(v)}",
        "the Saturday hotel night",
        [lambda rng, v: ((lambda f: (f"Flying home on Friday would cost {f} thalers; staying over Saturday night, "
                                     f"the return flight costs {f - v} thalers.", v))(
            rng.randrange(v + 180, v + 600)))],
        near=25, far=60, lo=20, hi=400)),
    ("7", Numeric(
        "currency exchange fee",
        f"Clause {S} currency exchange fees are reimbursed when the fee is at most 3 percent of the amount "
        "exchanged. A higher fee is refused in full, so employees should exchange money at a bank or use the "
        "company card abroad.",
        30, "le", lambda v: f"a currency exchange fee of {v / 10:g} percent of the amount exchanged",
        "the exchange fee",
        [share("An employee pays a fee of {part} thalers to exchange {bill} thalers into local currency.",
               (200, 900), per=1000)],
        near=8, far=15, lo=5, hi=90)),
    ("7", Numeric(
        "luggage storage",
        f"Clause {S} luggage storage is reimbursed only when at least 3 hours pass between hotel check-out and the "
        "departure of the employee's train or flight. For shorter gaps the employee is expected to keep the "
        "luggage, and storage fees are refused.",
        180, "ge", lambda v: f"luggage storage for a gap of {dur(v)} between hotel check-out and departure",
        "the luggage storage",
        [times_apart("An employee checks out of the hotel at {a},", "and her train departs at {b}.", 9 * 60,
                     14 * 60)],
        near=40, far=90, lo=30, hi=420, step=5)),
]

# Which clauses the data keeps, most wanted first. The first 20 cover all 7 sections and every kind of condition:
# days before a date, flight and ride durations, a weight, hours across weekdays, distances, times of day, a
# time-or-weight rule, a nightly rate, a per-person average, a share of a bill, a weekday, a date range, a validity
# and a trip length in weeks and days, a gift's price and a saving; "at most", "less than", "at least" and "more
# than" all occur, some pointing against a naive prior (business class above 6 hours, extra insurance above 30
# days). Each of them has enough distinct values near its threshold for 5 new cases per label (some of the others,
# such as laundry or the conference fee, have only 4 on one side).
CLAUSE_PRIORITY = [
    "economy flight booked in advance", "business-class flight", "checked bag fee", "flight change fee",
    "first-class rail ticket", "sleeper cabin", "taxi fare", "bicycle or e-scooter hire",
    "hire car and distance to a station", "hotel room rate", "early check-in fee", "breakfast allowance",
    "client lunch per person", "drinks share of a client dinner", "hire-car fuel on working days",
    "winter-tyre surcharge", "visa fee", "extra travel insurance", "gift for a host", "Saturday-night hotel stay",
    # not kept while N_CLAUSES = 20
    "airport lounge pass", "monthly rail pass", "on-board rail upgrade", "airport parking", "private car mileage",
    "overnight stay and venue distance", "late check-out fee", "serviced apartment", "hotel internet charge",
    "dinner allowance", "team dinner", "coffee for a client meeting", "hire-car excess waiver", "hire-car wash",
    "mobile roaming charges", "laundry", "conference registration fee", "restaurant or taxi tip",
    "currency exchange fee", "luggage storage",
]


def main() -> None:
    rng = random.Random(SEED)
    assert sorted(CLAUSE_PRIORITY) == sorted(c.topic for _, c in CLAUSES)
    assert FACT_PER_CLAUSE == 2 and TRAIN_REASONING_PER_CLAUSE % 2 == 0 and TEST_PER_CLAUSE % 2 == 0
    kept = set(CLAUSE_PRIORITY[:N_CLAUSES])
    # Clause numbers: section.index within the section, counting the kept clauses only.
    clauses, counters = [], {}
    for section, c in CLAUSES:
        if c.topic not in kept:
            continue
        counters[section] = counters.get(section, 0) + 1
        cid = f"{section}.{counters[section]}"
        c.cid, c.text = cid, c.text.format(cid=cid)
        n_words = len(c.text.split())
        assert 30 <= n_words <= 60, (cid, n_words)
        clauses.append(c)
    assert len(clauses) == N_CLAUSES

    facts = [c.text for c in clauses]
    train, test = [], []
    for i, c in enumerate(clauses):
        seen_keys, seen_text = set(), set()

        def draw(want: bool, hard: bool, variant: int, frame_clause: bool = False) -> str:
            for text, key in c.case(rng, want, hard, variant):
                if key in seen_keys or text in seen_text:
                    continue
                if frame_clause:  # a fact question naming the clause: swap the frame, keep the case
                    for frame in DIRECT_FRAMES:
                        subj = _unframe(frame, text)
                        if subj is not None:
                            text = CLAUSE_FRAME.format(cid=c.cid, co=COMPANY, subj=subj)
                            break
                seen_keys.add(key)
                seen_text.add(text)
                return text
            raise AssertionError

        def row(text, want, kind):
            return {"question": text, "options": LABELS, "answer": YES if want else NO, "kind": kind,
                    "clause": c.cid}

        # Fact questions: one clear case on each side, far from the threshold.
        for j, want in enumerate((True, False)):
            train.append(row(draw(want, False, 0, frame_clause=(i + j) % 2 == 0), want, "fact"))
        # Hard cases near the threshold: TRAIN_REASONING_PER_CLAUSE for train, TEST_PER_CLAUSE for test, half per
        # label in each; the wording cycles over the direct and derived forms, and the labels run T F F T ... so
        # that each label gets each wording.
        variants = list(range(c.n_variants))
        rng.shuffle(variants)
        wants = [k % 4 in (0, 3) for k in range(TRAIN_REASONING_PER_CLAUSE + TEST_PER_CLAUSE)]
        plan = [(train if k < TRAIN_REASONING_PER_CLAUSE else test, w) for k, w in enumerate(wants)]
        for k, (split, want) in enumerate(plan):
            split.append(row(draw(want, True, variants[k % len(variants)]), want, "reasoning"))

    rng.shuffle(train)
    rng.shuffle(test)
    for prefix, rows in (("tp-train", train), ("tp-test", test)):
        for k, r in enumerate(rows, 1):
            rows[k - 1] = {"id": f"{prefix}-{k:03d}", **r}
    questions = [r["question"] for r in train + test]
    assert len(set(questions)) == len(questions)
    per_clause = ((train, FACT_PER_CLAUSE, TRAIN_REASONING_PER_CLAUSE), (test, 0, TEST_PER_CLAUSE))
    for split, n_fact, n_reasoning in per_clause:
        for kind, n in (("fact", n_fact), ("reasoning", n_reasoning)):
            for label in LABELS:
                assert sum(r["kind"] == kind and r["answer"] == label for r in split) == n * N_CLAUSES // 2

    (HERE / "facts.txt").write_text("".join(f + "\n" for f in facts), encoding="utf-8")
    for name, rows in (("train.jsonl", train), ("test.jsonl", test)):
        (HERE / name).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"facts.txt {len(facts)}  train.jsonl {len(train)}  test.jsonl {len(test)}")


def _unframe(frame: str, text: str) -> str | None:
    """The {subj} of a question written with `frame`, or None when it was written with another frame."""
    head, tail = frame.format(co=COMPANY, subj="\0").split("\0")
    if text.startswith(head) and text.endswith(tail):
        return text[len(head): len(text) - len(tail)]
    return None


if __name__ == "__main__":
    main()
