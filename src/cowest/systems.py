"""The one table of systems: who answers a question, and with which weak model variant.

A row of the results table is an evaluated system (`evaluate`, `cowest eval`); a model name of `cowest serve` is a
served one (`description` says what it is). Most are both; `weak` is served only (the aligned weak model, else the
SFT one), the baselines are evaluated only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class System:
    """Who answers, and with which weak model variant."""

    name: str
    label: str  # its row label in the results
    kind: str  # "weak" | "strong" | "collab" | "supericl" | "retrieval"
    variant: str | None = None  # weak model variant: "base" | "sft" | "aligned" | "round_K"
    description: str | None = None  # what `cowest serve` says of it (None: not served)
    evaluated: bool = True  # a row of the results table (a served-only system is not)


SYSTEMS: dict[str, System] = {
    s.name: s
    for s in [
        System("weak_base", "weak base", "weak", "base"),
        System("weak_sft", "weak SFT", "weak", "sft"),
        System("weak_aligned", "weak aligned (DPO)", "weak", "aligned"),
        System("strong", "strong alone (CoT)", "strong", description="the strong model alone (chain of thought)"),
        System("supericl", "SuperICL-style (SFT weak answer + confidence -> strong)", "supericl", "sft"),
        System("retrieval", "retrieval (BM25 passages -> strong)", "retrieval"),
        System("collab_base", "collaboration (base draft -> strong)", "collab", "base"),
        System("refine", "standard refinement (SFT draft -> strong)", "collab", "sft",
               description="standard refinement: the SFT weak model drafts, the strong model refines"),
        System("cowest", "CoWest (aligned draft -> strong)", "collab", "aligned",
               description="CoWest: the aligned weak model drafts, the strong model refines"),
        System("weak", "weak alone", "weak", "aligned", evaluated=False,
               description="the weak model alone (the aligned model, else the SFT model)"),
    ]
}
# The served systems in the order `cowest serve` lists them; its `default` model prefers the first three in this order.
SERVED: tuple[str, ...] = ("cowest", "refine", "strong", "weak")
DEFAULT_SERVED: tuple[str, ...] = SERVED[:3]
_ROUND = re.compile(r"^(weak|cowest)_round_([1-9][0-9]*)$")


def evaluated() -> list[str]:
    """The names of the evaluated systems (rows of the results table), in table order."""
    return [n for n, s in SYSTEMS.items() if s.evaluated]


def find_system(name: str) -> System | None:
    """The evaluated system `name` (plus `weak_round_K` / `cowest_round_K`), or None if there is none."""
    if name in SYSTEMS and SYSTEMS[name].evaluated:
        return SYSTEMS[name]
    if m := _ROUND.match(name):
        who, k = m.groups()
        label = f"weak aligned, round {k}" if who == "weak" else f"CoWest, round {k} draft -> strong"
        return System(name, label, "weak" if who == "weak" else "collab", f"round_{k}")
    return None


def get_systems(names: Sequence[str]) -> list[System]:
    """Look up evaluated systems by name (plus `weak_round_K` / `cowest_round_K`) with a clear error."""
    out = []
    for n in names:
        if (s := find_system(n)) is None:
            raise ValueError(f"unknown eval system {n!r}; known: {', '.join(evaluated())}, weak_round_K, "
                             "cowest_round_K")
        out.append(s)
    return out


def shown_variant(name: str) -> str | None:
    """The weak variant whose drafts the system `name` shows the strong model (None: it shows none)."""
    s = find_system(name)
    return s.variant if s is not None and s.kind == "collab" else None


def served_systems() -> list[System]:
    """The systems `cowest serve` can answer as, in the order it lists them."""
    return [SYSTEMS[n] for n in SERVED]


def round_of(variant: str | None, rounds: int) -> int:
    """The alignment round that trained a weak variant: `rounds` for `aligned`, K for `round_K`, else 0."""
    if variant == "aligned":
        return rounds
    if variant and variant.startswith("round_"):
        return int(variant.removeprefix("round_"))
    return 0
