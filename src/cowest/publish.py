"""Traceable numbers: publish a run's small result files, and keep README tables generated from them."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from .errors import CowestError
from .io import atomic_dir, read_json
from .report.artifacts import Artifacts, load
from .report.seeds import compare_markdown
from .report.tables import (
    ablation_tables,
    comparisons_markdown,
    dpo_heldout_rows,
    draft_rows,
    fact_recall_rows,
    level_label,
    md_table,
    mining_round_rows,
    or_missing,
    results_markdown,
)

# Small result files of a run, relative to the run directory (weights, caches and training data never match).
RUN_PATTERNS: tuple[str, ...] = (
    "config.yaml", "report.md", "*manifest.json", "*/*manifest.json",
    "eval*/results.json", "eval*/results.csv", "eval*/results.md", "eval*/predictions.jsonl",
    "round_*/mining_stats.json", "round_*/pairs.jsonl", "round_*/pairs_heldout.jsonl", "round_*/heldout.json",
    "round_*/train_log.jsonl", "sft/train_log.jsonl", "ablations/results.json",
)
COMPARE_FILES: tuple[str, ...] = ("compare.json", "compare.md")
NEVER = {"adapter", "merged", "cache.sqlite"}  # path parts that are never published, whatever matched

BLOCK = re.compile(r"(<!-- cowest:table (\S+) (\S+) -->\n)(.*?)(<!-- /cowest:table -->)", re.DOTALL)


class PublishError(CowestError, ValueError):
    """Something that cannot be published or rendered; the message names the path or block."""


def publishable(src: Path) -> list[Path]:
    """The files publish() copies from a run or compare directory, relative to it, sorted."""
    src = Path(src)
    if (src / "compare.json").is_file() and not (src / "config.yaml").is_file():
        return [Path(n) for n in COMPARE_FILES if (src / n).is_file()]
    if not (src / "config.yaml").is_file():
        raise PublishError(f"{src}: neither a run directory (config.yaml) nor a comparison (compare.json)")
    found = {p.relative_to(src) for pat in RUN_PATTERNS for p in src.glob(pat) if p.is_file()}
    return sorted(p for p in found if not NEVER & set(p.parts))


def publish(src: Path, dest: Path) -> list[Path]:
    """Copy the small result files of a run (or compare.json/.md of a comparison) to dest, replacing it atomically."""
    src, dest = Path(src), Path(dest)
    if not src.is_dir():
        raise PublishError(f"{src}: not a directory")
    s, d = src.resolve(), dest.resolve()
    if s == d or d in s.parents:
        raise PublishError(f"{dest}: would replace the directory being published")
    files = publishable(src)
    with atomic_dir(dest) as tmp:
        for rel in files:
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / rel, tmp / rel)
    return [dest / rel for rel in files]


def _loaded(run_dir: Path, rel: str) -> Artifacts:
    """The run's artifacts, or a PublishError when `rel` is missing or unreadable."""
    a = load(Path(run_dir))
    path = Path(run_dir) / rel
    if not path.is_file():
        raise PublishError(f"{path}: missing")
    if bad := [w for w in a.warnings if w.startswith(rel)]:
        raise PublishError(f"{run_dir}/{bad[0]}")
    return a


def eval_markdown(run_dir: Path, eval_name: str = "eval") -> str:
    """A published run's evaluation as the report shows it: results, paired comparisons and draft diagnostics."""
    res = _loaded(run_dir, f"{eval_name}/results.json").evals[eval_name]
    parts = [results_markdown(res, keys=True)]
    if (comp := comparisons_markdown(res)):
        parts.append(comp)
    if (drafts := draft_rows(res))[1]:
        parts.append(md_table(*drafts))
    parts.append(f"{or_missing(res.recipe, Path(run_dir).name)}, {or_missing(res.split, eval_name)} split, {res.n} "
                 f"questions; brackets: {level_label(res.level)} bootstrap confidence intervals.")
    return "\n\n".join(parts) + "\n"


def diagnostics_markdown(run_dir: Path) -> str:
    """One published run's training evidence: SFT validation and recall, mining, held-out DPO per epoch."""
    a = load(Path(run_dir))
    parts = [md_table(*recall)] if (recall := fact_recall_rows(a))[1] else []
    parts += [md_table(*mining_round_rows(k, st)) for k, st in sorted(a.mining.items())]
    if (held := dpo_heldout_rows(a))[1]:
        parts.append(md_table(*held))
    if (valid := a.evals.get("eval_valid")) and (drafts := draft_rows(valid))[1]:
        parts.append(f"Held-out mined questions ({valid.n}), SFT vs aligned drafts refined:\n\n"
                     + md_table(*drafts))
    if not parts:
        raise PublishError(f"{run_dir}: no SFT, mining or DPO artifacts to report")
    return "\n\n".join(parts) + "\n"


def ablations_markdown(run_dir: Path) -> str:
    """A published run's ablations (including the alignment settings search) as tables."""
    a = _loaded(run_dir, "ablations/results.json")
    tables = ablation_tables(a.ablations, a.confidence)
    return "\n\n".join(f"{title}:\n\n{md_table(h, r)}" for title, h, r in tables) + "\n"


def _bench(folder: Path, name: str, script: str) -> dict:
    path = Path(folder) / f"{name}.json"
    if not path.is_file():
        raise PublishError(f"{path} missing: run `python bench/{script} --out {path}`")
    return read_json(path)


def faults_markdown(folder: Path) -> str:
    """The reliability benchmark's figures (bench/bench_faults.py --out DIR/faults.json)."""
    b = _bench(folder, "faults", "bench_faults.py")
    rows = [[f["fault"], str(f["injected"]), f"{f['identical']}/{b['requests']}", f"{f['attempts_per_request']:.2f}",
             str(f["max_attempts"]), f["error"] or "-"] for f in b["faults"]]
    table = md_table(["fault (at {:.0%})".format(b["rate"]), "injected", "answers identical to a clean run",
                      "attempts / request", "max attempts", "error"], rows)
    return (f"{table}\n\n{b['requests']} requests of n = {b['n']} samples; timeout {b['timeout_s']} s, "
            f"max_retries {b['max_retries']}, concurrency {b['concurrency']} ({b.get('machine', '')}). "
            f"kill -9 after {b['kill9']['finished_before_kill']} finished calls, then resume: "
            f"{b['kill9']['repeated']} finished calls repeated. A dead server (connection refused) failed the stage "
            f"in {b['dead']['seconds']:.1f} s and a hung one (accepts, never answers) in {b['hung']['seconds']:.1f} s, "
            f"against {b['dead']['naive_seconds']:.0f} s for retries x requests x timeout / concurrency.\n")


def concurrency_markdown(folder: Path) -> str:
    """The strong-call concurrency benchmark's figures (bench/bench_concurrency.py --out DIR/concurrency.json)."""
    b = _bench(folder, "concurrency", "bench_concurrency.py")
    rows = [[str(r["concurrency"]), f"{r['wall_s']:.2f}", f"{r['calls_per_s']:.1f}", f"{r['vs_concurrency_1']:.2f}x",
             f"{r['bound_s']:.2f}", f"{r['answered']}/{b['requests']}"] for r in b["levels"]]
    table = md_table(["concurrency", "wall s", "calls / s", "vs concurrency 1", "bound s (n x latency / concurrency)",
                      "answered"], rows)
    k = b["rate_limited"]
    return (f"{table}\n\n{b['requests']} calls, {b['latency_s'] * 1000:.0f} ms each; {b['machine']}. Against a "
            f"stand-in that takes {k['server_limit']} calls at once and answers the rest 429 with Retry-After "
            f"{k['retry_after_s']:g} s, at concurrency {k['concurrency']}: {k['answered']}/{b['requests']} answered in "
            f"{k['wall_s']:.1f} s, {k['limited']} 429s, {k['attempts_per_call']:.2f} attempts per call, earliest "
            f"retry {k['min_retry_gap_s']:.2f} s after its 429.\n")


def rerun_markdown(folder: Path) -> str:
    """The cached re-run benchmark's figures (bench/bench_rerun.py --out DIR/rerun.json)."""
    b = _bench(folder, "rerun", "bench_rerun.py")
    first = b["runs"]["first run"]["wall_s"]
    rows = [[label, f"{r['wall_s']:.1f}", f"{r['wall_s'] / first:.1%}", str(r["model_calls"]), str(r["cache_hits"]),
             ", ".join(r["ran"]) or "-"] for label, r in b["runs"].items()]
    table = md_table(["`cowest run`", "wall s", "of the first run", "model calls", "cache hits", "stages run"], rows)
    return f"{table}\n\n`{b['recipe']}`; {b['machine']}.\n"


def serve_markdown(folder: Path) -> str:
    """The serving load benchmark's figures (bench/bench_serve.py --out DIR/serve.json)."""
    b = _bench(folder, "serve", "bench_serve.py")
    first = {}
    rows = []
    for r in b["rows"]:
        base = first.setdefault(r["strong"], r["throughput_rps"])
        rows.append([r["strong"], str(r["concurrency"]), f"{r['wall_s']:.1f}", f"{r['throughput_rps']:.3f}",
                     f"{r['throughput_rps'] / base:.2f}x", f"{r['p50_s']:.2f}", f"{r['p95_s']:.2f}", str(r["errors"]),
                     f"{r['mean_draft_batch']:.1f}"])
    table = md_table(["strong model", "concurrency", "wall s", "requests / s", "vs concurrency 1", "p50 s", "p95 s",
                      "errors", "drafts per weak call"], rows)
    k = b["batching"]
    return (f"{table}\n\n{b['requests']} `cowest` requests per row; weak {b['weak']} (drafts of "
            f"{b['draft_max_tokens']} tokens), strong answers of {b['strong_max_tokens']} tokens; {b['machine']}. "
            f"Weak batching at concurrency {k['concurrency']} on the stand-in: {k['batched']['throughput_rps']:.3f} "
            f"requests / s against {k['one_at_a_time']['throughput_rps']:.3f} with one draft per weak call, "
            f"**{k['speedup']:.2f}x** (p95 {k['batched']['p95_s']:.2f} s against "
            f"{k['one_at_a_time']['p95_s']:.2f} s).\n")


def overlap_markdown(folder: Path) -> str:
    """The overlap benchmark's figures (bench/bench_overlap.py --out DIR/overlap.json)."""
    b = _bench(folder, "overlap", "bench_overlap.py")
    rows = [[r["workload"], str(r["slots"]), str(r["strong_calls"]),
             f"{r['weak_overlapped_s']:.1f} ({r['weak_s']:.1f})", f"{r['strong_bound_s']:.1f}",
             f"{r['bound_s']:.1f}", f"{r['sequential_s']:.1f} ({r['sequential_vs_bound']:.2f}x)",
             f"{r['overlapped_s']:.1f} ({r['overlapped_vs_bound']:.2f}x)", f"{r['speedup']:.2f}x"] for r in b["rows"]]
    table = md_table(["workload", "slots", "strong calls", "weak compute s (in the sequential run)",
                      "calls x latency / slots s", "bound s",
                      "sequential s (of bound)", "overlapped s (of bound)", "speed-up"], rows)
    return (f"{table}\n\n{b['questions']} questions (mining: {b['k']} sampled drafts each; evaluation: SFT and aligned "
            f"drafts, strong alone, refinement, CoWest), drafts of {b['draft_tokens']} tokens, stand-in strong "
            f"model answering after {b['latency_s']:g} s; {b['machine']}.\n")


def training_markdown(folder: Path) -> str:
    """The training throughput benchmark's figures (bench/bench_training.py --out DIR/training.json)."""
    b = _bench(folder, "training", "bench_training.py")
    parts = []
    for kind, what, epochs in (("sft", f"SFT, {b.get('sft_rows', '?')} rows", b["epochs"]),
                               ("dpo", f"DPO, {b.get('dpo_pairs', '?')} pairs", b.get("dpo_epochs", b["epochs"]))):
        if not b.get(kind):
            continue
        rows = [[label, f"{r['wall_s']:.1f}", f"{r['tokens_per_s']:.0f}", f"{r['speedup_vs_plain']:.2f}x",
                 str(r["steps"]), f"{r['train_loss']:.3f}"] + ([f"{r['last_margin']:.3f}"] if kind == "dpo" else [])
                for label, r in b[kind].items()]
        head = ["settings", "wall s", "tokens / s", "vs plain", "steps", "train loss"]
        where = b.get(f"{kind}_machine") or b["machine"]
        parts.append(f"{what}, {epochs:g} epoch(s) per row ({where}):\n\n"
                     + md_table(head + (["last margin"] if kind == "dpo" else []), rows))
    return "\n\n".join(parts) + f"\n\n`{b['recipe']}`'s data and settings.\n"


def multiprocess_markdown(folder: Path) -> str:
    """The multi-process benchmark's figures (bench/bench_multiprocess.py --out DIR/multiprocess.json)."""
    b = _bench(folder, "multiprocess", "bench_multiprocess.py")
    what = {"draft": f"drafting ({b['questions']} questions x {b['k']} sampled drafts)", "sft": "SFT (1 epoch)"}
    rows = [[what[r["task"]], r["config"], f"{r['wall_s']:.1f}", f"{r['tokens_per_s']:.0f}", f"{r['vs_naive']:.2f}x",
             f"{r['steps']} steps, loss {r['train_loss']:.3f}" if r["task"] == "sft" else f"drafts {r['drafts_sha']}"]
            for r in b["rows"]]
    table = md_table(["work", "configuration", "wall s", "tokens / s", "vs naive", "result"], rows)
    same = "identical" if b.get("drafts_identical") else "**not identical**"
    rows_sft = next((r["rows"] for r in b["rows"] if r["task"] == "sft"), "?")
    return (f"{table}\n\nThe drafts are {same} in every configuration; SFT trains {rows_sft} rows at the recipe's "
            f"batch, split over the processes. `{b['recipe']}`'s weak model and settings; {b['machine']}.\n")


def mining_markdown(folder: Path) -> str:
    """The mining benchmark's figures (bench/bench_mining.py --out DIR/mining.json)."""
    b = _bench(folder, "mining", "bench_mining.py")
    rows = [[r["strategy"], str(r["questions"]), str(r["strong_requests"]), str(r["strong_calls_made"]), str(r["pairs"]),
             str(r["questions_with_pair"]), f"{r['pairs_per_100_calls']:.1f}", f"{r['vs_exhaustive']:.2f}x",
             f"{r['wall_s']:.0f}"] for r in b["rows"]]
    table = md_table(["mining", "questions", "strong requests", "strong calls made", "pairs", "questions with a pair",
                      "pairs / 100 calls", "vs exhaustive", "wall s"], rows)
    return (f"{table}\n\n`{b['data']}` ({b['task']}), the SFT model of `{b['run']}`, k = {b['k']} drafts a question "
            f"(adaptive: {b['extra_drafts']} more where a question splits), the strong model shown "
            f"{', '.join(b['draft_sections'] or ['the whole draft'])}; each way with an empty call cache; "
            f"{b['machine']}.\n")


KINDS = {"eval": eval_markdown, "valid": lambda d: eval_markdown(d, "eval_valid"), "diagnostics": diagnostics_markdown,
         "ablations": ablations_markdown, "faults": faults_markdown,
         "concurrency": concurrency_markdown, "rerun": rerun_markdown, "serve": serve_markdown,
         "overlap": overlap_markdown, "training": training_markdown, "multiprocess": multiprocess_markdown,
         "mining": mining_markdown}


def render_block(target: str, kind: str, root: Path) -> str:
    """The generated body of one README block: `compare`, `eval`, `diagnostics` or `ablations` of a published dir."""
    root = Path(root).resolve()
    folder = (root / target).resolve()
    if root != folder and root not in folder.parents:
        raise PublishError(f"cowest:table {target} {kind}: {target} is outside {root}")
    if kind == "compare":
        path = folder / "compare.json"
        if not path.is_file():
            raise PublishError(f"cowest:table {target} {kind}: {path} missing")
        return compare_markdown(read_json(path))
    if kind in KINDS:
        return KINDS[kind](folder)
    raise PublishError(f"cowest:table {target} {kind}: unknown kind {kind!r} (compare, {', '.join(KINDS)})")


def _blocks(text: str) -> list[re.Match]:
    """Every table block in a README text."""
    return list(BLOCK.finditer(text))


def render_readme(readme_text: str, root: Path) -> str:
    """The README text with every `cowest:table` block's body regenerated from the files under root."""
    return BLOCK.sub(lambda m: m.group(1) + render_block(m.group(2), m.group(3), root) + m.group(5), readme_text)


def check_readme(readme: Path) -> list[str]:
    """Names (`DIR KIND`) of the README's blocks whose body differs from the regenerated one; [] when in sync."""
    readme = Path(readme)
    text = readme.read_text(encoding="utf-8")
    return [f"{m.group(2)} {m.group(3)}" for m in _blocks(text)
            if m.group(4) != render_block(m.group(2), m.group(3), readme.parent)]
