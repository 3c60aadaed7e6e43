"""The benchmarks' figures as README blocks: `<!-- cowest:table DIR KIND -->` with KIND one of `RENDERERS`.

Each bench script writes its figures with `--out DIR/<kind>.json`; `cowest readme` renders them with the function
here of the same kind (`cowest.publish.bench_renderers` loads this file by its path). A missing file is a
FileNotFoundError that says which script writes it.
"""

from __future__ import annotations

from pathlib import Path

from cowest.io import read_json
from cowest.report.tables import md_table


def _bench(folder: Path, name: str, script: str) -> dict:
    """The figures bench/`script` wrote to `folder`/`name`.json."""
    path = Path(folder) / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing: run `python bench/{script} --out {path}`")
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
            f"batch as its `global_batch_size`, split over the processes. `{b['recipe']}`'s weak model and settings; "
            f"{b['machine']}.\n")


def mining_markdown(folder: Path) -> str:
    """The mining benchmark's figures (bench/bench_mining.py --out DIR/mining.json)."""
    b = _bench(folder, "mining", "bench_mining.py")
    rows = [[r["strategy"], str(r["questions"]), str(r["strong_requests"]), str(r["strong_calls_made"]), str(r["pairs"]),
             str(r["questions_with_pair"]), f"{r['pairs_per_100_calls']:.1f}", f"{r['vs_exhaustive']:.2f}x",
             f"{r['wall_s']:.0f}"] for r in b["rows"]]
    table = md_table(["mining", "questions", "strong requests", "strong calls made", "pairs", "questions with a pair",
                      "pairs / 100 calls", "vs exhaustive", "wall s"], rows)
    data = f"`{b['data']}` ({b['task']})" if b.get("data") else f"the `{b['task']}` task's own data"
    return (f"{table}\n\n{data}, the SFT model of `{b['run']}`, k = {b['k']} drafts a question "
            f"(adaptive: {b['extra_drafts']} more where a question splits), the strong model shown "
            f"{', '.join(b['draft_sections'] or ['the whole draft'])}; " + _mining_caches(b) + f"; {b['machine']}.\n"
            + _mining_oracle(b["rows"][0]))


def _mining_oracle(base: dict) -> str:
    """What choosing questions perfectly would reach: the exhaustive row's calls and pairs on only the questions that
    gave a pair (known only afterwards), against its pairs per 100 calls; empty where the row lacks its questions."""
    got = [q for q in base.get("by_question", {}).values() if q["pairs"]]
    if not got or not base["pairs_per_100_calls"]:
        return ""
    calls, pairs = sum(1 + q["refined"] for q in got), sum(q["pairs"] for q in got)
    rate = 100 * pairs / calls
    return (f"\nSent only to the {len(got)} questions that gave the exhaustive way a pair (known only after it), "
            f"the strong model alone and the same refinements would have cost {calls} calls for its {pairs} pairs: "
            f"{rate:.1f} per 100, {rate / base['pairs_per_100_calls']:.2f}x; every other call went to questions that "
            f"gave none.\n")


def _mining_caches(b: dict) -> str:
    """How the mining benchmark's rows met the call cache, which decides what their calls and wall times mean."""
    stops = ""
    if "pair_target" in b:
        target, budget = b["pair_target"], b["strong_call_budget"]
        stops = "the recipe's stops: " + (f"pair target {target}" if target is not None else "no pair target") + (
            f", budget {budget} strong requests" if budget is not None else ", no budget")
    if "adaptive_cache" not in b:  # written before adaptive mining's `alone` rows
        return "each way with an empty call cache" + (
            f" ({stops}; that row reads the adaptive row's cache and counts its requests as calls)" if stops else "")
    start = "an empty call cache" if b["adaptive_cache"] == "empty" else b["adaptive_cache"]
    return (f"exhaustive with an empty call cache; the adaptive rows from {start}, shared, each counting its "
            f"requests as calls (it never sends a prompt twice), so their wall times time only the calls the cache "
            f"could not answer" + (f" ({stops})" if stops else ""))


RENDERERS = {"faults": faults_markdown, "concurrency": concurrency_markdown, "rerun": rerun_markdown,
             "serve": serve_markdown, "overlap": overlap_markdown, "training": training_markdown,
             "multiprocess": multiprocess_markdown, "mining": mining_markdown}
