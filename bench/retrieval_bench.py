"""Retrieval quality and speed on real runbooks that nobody here wrote.

Indexes a runbook corpus through the real indexer process and a real ToonDB
server, asks one question per Prometheus alert rule (its summary and
description, template placeholders replaced by neutral words) and checks
whether the runbook named by the rule's ``runbook_url`` comes back on top.

For each retrieval mode (hybrid, vector, keyword) it reports, at the
document level, recall@1, @3, @5 and MRR over the first ``MRR_CUTOFF``
documents, plus query latency p50/p99 measured around ``Retriever.execute``
after a warm-up. ``--scale N`` measures again on the corpus copied until
the index holds at least N chunks.

    .venv/bin/python bench/retrieval_bench.py \\
        --runbooks RUNBOOKS_REPO/content/runbooks \\
        --alerts ALERT_RULES_DIR [--scale 10000] [--misses]

Prints a Markdown table for the README and writes the same figures as JSON
to ``--out``.
"""

import argparse
import hashlib
import json
import logging
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

# onnxruntime writes a telemetry file per session unless told not to before
# it is imported; the retriever imports it to embed the queries.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

import yaml  # noqa: E402

from incident_ops import keys, logs  # noqa: E402
from incident_ops import server as server_control  # noqa: E402
from incident_ops.store import Store  # noqa: E402

log = logging.getLogger("bench.retrieval")

MODES = ("hybrid", "vector", "keyword")
RECALL_CUTOFFS = (1, 3, 5)
MRR_CUTOFF = 10
DEFAULT_OUT = PROJECT_ROOT / "bench" / "results" / "retrieval.json"
CODE_UNDER_TEST = ("incident_ops", "process_b_indexer.py")

# Every placeholder becomes the same word whatever the alert, so no query
# carries a hint the real alert text would not: a label stands for an
# opaque name ("x"), a value or duration for an unknown amount ("some").
LABEL_WORD = "x"
VALUE_WORD = "some"

_TEMPLATE_ACTION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}", re.DOTALL)
_CONTROL_KEYWORDS = ("with", "if", "else", "end", "range")
# The indexer's one-line summary: "... (N chunks, E embedded, ...) ... in S s".
# Its own pass time excludes interpreter start-up and model loading.
_INDEXER_SUMMARY = re.compile(r"(\d+) embedded\b.* in ([\d.]+) s")


# -- queries and ground truth -------------------------------------------------


@dataclass(frozen=True)
class AlertQuery:
    """One alert rule turned into a question with a known right answer."""

    alert: str
    query: str
    runbook: str          # the document key its runbook_url names


def neutralize_placeholders(text: str) -> str:
    """``text`` with every Go template action replaced by a neutral word.

    Control actions (``with``, ``if``, ``end`` ...) vanish and keep the text
    they wrap; ``{{ . }}`` and anything reading ``$labels`` become
    ``LABEL_WORD``; every other action (``$value``, ``printf``, pipes into
    ``humanize``) becomes ``VALUE_WORD``. Whitespace is collapsed.
    """

    def replace(match: re.Match) -> str:
        action = match.group(1).strip()
        first_word = action.split(maxsplit=1)[0] if action else ""
        if first_word in _CONTROL_KEYWORDS:
            return " "
        if action == "." or "$labels" in action:
            return f" {LABEL_WORD} "
        return f" {VALUE_WORD} "

    return " ".join(_TEMPLATE_ACTION.sub(replace, text).split())


def document_key(path: str) -> str:
    """How a runbook is named for matching: its file stem, lower-cased.

    Works for a source path (``node/NodeClockSkewDetected.md``) and for the
    last segment of a runbook URL (``.../node/nodeclockskewdetected``); a
    copy of a runbook in another folder has the same key.
    """
    name = path.rstrip("/").rsplit("/", 1)[-1]
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return stem.lower()


def load_alert_queries(alerts_dir: Path) -> list[AlertQuery]:
    """Every alert rule with a ``runbook_url`` in the PrometheusRule files.

    Rules without a runbook URL cannot be scored and are left out; a file
    that is not a PrometheusRule is skipped with a warning.
    """
    queries = []
    files = sorted(alerts_dir.glob("*.yaml")) + sorted(alerts_dir.glob("*.yml"))
    if not files:
        raise SystemExit(f"no PrometheusRule YAML files in {alerts_dir}")

    for path in files:
        try:
            manifest = yaml.safe_load(path.read_text(encoding="utf-8"))
            groups = manifest["spec"]["groups"]
        except (yaml.YAMLError, KeyError, TypeError) as error:
            log.warning("skipping %s: not a PrometheusRule (%s)", path.name, error)
            continue

        for group in groups:
            for rule in group.get("rules") or []:
                annotations = rule.get("annotations") or {}
                url = annotations.get("runbook_url")
                if "alert" not in rule or not url:
                    continue
                text = f"{annotations.get('summary', '')} " \
                       f"{annotations.get('description', '')}"
                queries.append(AlertQuery(
                    alert=rule["alert"],
                    query=neutralize_placeholders(text),
                    runbook=document_key(url),
                ))
    return queries


def answerable(
    queries: Iterable[AlertQuery], indexed_sources: Iterable[str]
) -> tuple[list[AlertQuery], list[AlertQuery]]:
    """Split ``queries`` into those whose runbook was indexed and the rest."""
    indexed = {document_key(source) for source in indexed_sources}
    kept, dropped = [], []
    for query in queries:
        (kept if query.runbook in indexed else dropped).append(query)
    return kept, dropped


# -- metrics -------------------------------------------------------------------


def collapse_to_documents(chunk_sources: Iterable[str]) -> list[str]:
    """Document keys in the order their first chunk appears."""
    documents: list[str] = []
    for source in chunk_sources:
        key = document_key(source)
        if key not in documents:
            documents.append(key)
    return documents


def first_rank(expected: str, documents: Sequence[str]) -> int | None:
    """1-based rank of ``expected`` in ``documents``, or None if absent."""
    try:
        return documents.index(expected) + 1
    except ValueError:
        return None


def quality_metrics(ranks: Sequence[int | None]) -> dict[str, float]:
    """Recall@k and MRR@``MRR_CUTOFF`` from each query's first-hit rank.

    A rank of None (not retrieved) or past the cutoff scores 0.
    """
    if not ranks:
        raise ValueError("no queries to score")
    metrics = {}
    for cutoff in RECALL_CUTOFFS:
        hits = sum(1 for rank in ranks if rank is not None and rank <= cutoff)
        metrics[f"recall@{cutoff}"] = hits / len(ranks)
    reciprocal = [
        1.0 / rank if rank is not None and rank <= MRR_CUTOFF else 0.0
        for rank in ranks
    ]
    metrics["mrr"] = sum(reciprocal) / len(ranks)
    return metrics


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile: a value that was really observed."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    index = max(0, math.ceil(fraction * len(ordered)) - 1)
    return ordered[index]


# -- the server and the indexer --------------------------------------------------


@contextmanager
def running_server(database: Path) -> Iterator[server_control.ServerPaths]:
    """A fresh ToonDB server on ``database``, stopped however the block ends."""
    paths = server_control.ServerPaths.for_db(str(database))
    pid = server_control.start_daemon(paths)
    log.info("ToonDB server pid %d on %s", pid, paths.socket)
    try:
        yield paths
    finally:
        server_control.stop(paths)


@dataclass
class IndexRun:
    seconds: float
    documents: int
    chunks: int
    embedder: str
    dim: int
    sources: list[str]
    # chunks embedded per second of the indexer's own pass, when its
    # summary line says so
    embedding_rate: float | None

    @property
    def chunks_per_second(self) -> float:
        return self.chunks / self.seconds


def index_corpus(paths: server_control.ServerPaths, runbooks: Path,
                 timeout: float) -> IndexRun:
    """One complete pass of the real indexer process over ``runbooks``."""
    env = dict(os.environ)
    env["OPS_DB"] = str(paths.database)
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    command = [
        sys.executable, str(PROJECT_ROOT / "process_b_indexer.py"),
        "--db", str(paths.database), "--runbooks", str(runbooks), "--once",
    ]

    started = time.perf_counter()
    result = subprocess.run(
        command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
        timeout=timeout,
    )
    seconds = time.perf_counter() - started
    output = result.stdout + result.stderr
    if result.returncode != 0:
        raise SystemExit(
            f"indexer exited with {result.returncode} on {runbooks}:\n"
            f"{output[-3000:]}"
        )

    with Store(paths.socket) as store:
        manifest = store.get(keys.RUNBOOK_INDEX)
    if not manifest or not manifest.get("docs"):
        raise SystemExit(f"the indexer wrote no manifest for {runbooks}:\n{output}")

    docs = manifest["docs"]
    return IndexRun(
        seconds=seconds,
        documents=len(docs),
        chunks=sum(doc["chunks"] for doc in docs.values()),
        embedder=str(manifest.get("embedder")),
        dim=int(manifest.get("dim") or 0),
        sources=[doc["source"] for doc in docs.values()],
        embedding_rate=embedding_rate(output),
    )


def embedding_rate(indexer_output: str) -> float | None:
    """Chunks embedded per second of the pass, from the indexer's summary."""
    summaries = _INDEXER_SUMMARY.findall(indexer_output)
    if not summaries:
        return None
    embedded, seconds = (float(number) for number in summaries[-1])
    return embedded / seconds if seconds > 0 else None


def replicate_corpus(runbooks: Path, target: Path, copies: int) -> None:
    """``copies`` copies of the runbook tree, each in its own subfolder."""
    for number in range(copies):
        shutil.copytree(runbooks, target / f"copy{number:03d}")


# -- querying --------------------------------------------------------------------


@dataclass
class ModeResult:
    metrics: dict[str, float]
    latencies_ms: list[float]
    ranks: list[int | None]
    top_documents: list[list[str]] = field(repr=False)

    def summary(self) -> dict:
        return {
            **{name: round(value, 4) for name, value in self.metrics.items()},
            "p50_ms": round(percentile(self.latencies_ms, 0.50), 2),
            "p99_ms": round(percentile(self.latencies_ms, 0.99), 2),
            "queries": len(self.ranks),
            "timed_queries": len(self.latencies_ms),
        }


def load_retriever(store: Store):
    """A ready ``Retriever``, the seconds its index took to load from the
    store, and the seconds of its first query (the query embedder's cold
    start); both are kept out of query latency.
    """
    from incident_ops.retrieval import HybridQuery, Retriever

    started = time.perf_counter()
    retriever = Retriever(store)
    loaded = time.perf_counter()
    retriever.execute(HybridQuery.for_text("warm up", top_k=1), mode="hybrid")
    return retriever, loaded - started, time.perf_counter() - loaded


def run_mode(retriever, queries: Sequence[AlertQuery], mode: str, top_k: int,
             budget: int, warmup: int, repeat: int) -> ModeResult:
    """Ask every query in ``mode``; rank each answer and time every ask.

    The query set is asked ``repeat`` times so that p99 rests on more than
    a handful of samples; retrieval is deterministic, so ranks come from
    the first round.
    """
    from incident_ops.retrieval import HybridQuery

    def ask(text: str):
        return retriever.execute(
            HybridQuery(vector_query=text, keyword_query=text, top_k=top_k,
                        token_budget=budget),
            mode=mode,
        )

    for query in queries[:warmup]:
        ask(query.query)

    latencies, ranks, tops = [], [], []
    for round_number in range(repeat):
        for query in queries:
            started = time.perf_counter()
            context = ask(query.query)
            latencies.append((time.perf_counter() - started) * 1000)
            if round_number:
                continue

            documents = collapse_to_documents(context.sources)
            ranks.append(first_rank(query.runbook, documents))
            tops.append(documents[:3])

    return ModeResult(quality_metrics(ranks), latencies, ranks, tops)


def evaluate(paths: server_control.ServerPaths, queries: Sequence[AlertQuery],
             args: argparse.Namespace) -> tuple[dict, dict[str, ModeResult]]:
    """Start-up seconds of the reader, and each mode's results."""
    with Store(paths.socket) as store:
        retriever, load_seconds, first_query_seconds = load_retriever(store)
        results = {
            mode: run_mode(retriever, queries, mode, args.top_k, args.budget,
                           args.warmup, args.repeat)
            for mode in MODES
        }
    startup = {"index_load_s": round(load_seconds, 3),
               "first_query_s": round(first_query_seconds, 3)}
    return startup, results


# -- reporting -------------------------------------------------------------------


def markdown_table(summaries: dict[str, dict]) -> str:
    lines = [
        "| mode | recall@1 | recall@3 | recall@5 | MRR@10 | p50 ms | p99 ms |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for mode, row in summaries.items():
        lines.append(
            f"| {mode} | {row['recall@1']:.2f} | {row['recall@3']:.2f} "
            f"| {row['recall@5']:.2f} | {row['mrr']:.2f} "
            f"| {row['p50_ms']:.1f} | {row['p99_ms']:.1f} |"
        )
    return "\n".join(lines)


def hybrid_misses(queries: Sequence[AlertQuery], result: ModeResult) -> list[dict]:
    """Queries whose runbook was not first, worst rank first."""
    misses = [
        {"alert": query.alert, "expected": query.runbook, "rank": rank,
         "top3": top}
        for query, rank, top in zip(queries, result.ranks, result.top_documents,
                                    strict=True)
        if rank != 1
    ]
    return sorted(misses, key=lambda miss: (-(miss["rank"] or 10**6), miss["alert"]))


def code_version() -> str:
    """The last commit that touched the code under test (commits to other
    files do not change the figures); uncommitted edits to it add a digest
    of their diff, so two runs on different edits never look alike.
    """
    def git(*arguments: str) -> str:
        return subprocess.run(
            ["git", *arguments], cwd=PROJECT_ROOT, capture_output=True,
            text=True,
        ).stdout.strip()

    head = git("log", "-1", "--format=%h", "--", *CODE_UNDER_TEST) or "unknown"
    diff = git("diff", "HEAD", "--", *CODE_UNDER_TEST)
    untracked = git("ls-files", "--others", "--exclude-standard", "--",
                    *CODE_UNDER_TEST)
    if not diff and not untracked:
        return head
    digest = hashlib.sha1((diff + untracked).encode()).hexdigest()[:8]
    return f"{head} with uncommitted changes ({digest})"


# -- main ------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Recall, MRR and latency of runbook retrieval on real "
                    "alert rules and the runbooks their runbook_url names."
    )
    parser.add_argument("--runbooks", type=Path, required=True,
                        help="folder of runbooks to index (searched recursively)")
    parser.add_argument("--alerts", type=Path, required=True,
                        help="folder of PrometheusRule YAML files")
    parser.add_argument("--top-k", type=int, default=30,
                        help="chunks asked for per query (default 30)")
    parser.add_argument("--budget", type=int, default=100_000,
                        help="token budget per query; large so it never cuts "
                             "the ranking (default 100000)")
    parser.add_argument("--warmup", type=int, default=10,
                        help="untimed queries per mode before timing (default 10)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="times the query set is asked per mode for timing "
                             "(default 3)")
    parser.add_argument("--scale", type=int, default=0, metavar="CHUNKS",
                        help="also measure with the corpus copied until the index "
                             "holds at least CHUNKS chunks (default: skip)")
    parser.add_argument("--index-timeout", type=float, default=1800,
                        help="seconds allowed per indexer pass (default 1800)")
    parser.add_argument("--embedder", choices=("minilm", "openai"),
                        help="embedder for the indexer and the queries (sets "
                             "OPS_EMBEDDER; default: $OPS_EMBEDDER, else minilm)")
    parser.add_argument("--misses", action="store_true",
                        help="list the alerts whose runbook hybrid did not rank first")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"JSON results file (default {DEFAULT_OUT})")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logs")
    args = parser.parse_args(argv)
    for folder in (args.runbooks, args.alerts):
        if not folder.is_dir():
            parser.error(f"{folder} is not a folder")
    for name in ("top_k", "repeat"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    for name in ("warmup", "scale", "budget"):
        if getattr(args, name) < 0:
            parser.error(f"--{name} must be zero or more")
    return args


def measure_corpus(args: argparse.Namespace, runbooks: Path,
                   all_queries: list[AlertQuery], workdir: Path) -> dict:
    """Index ``runbooks`` on a fresh server and evaluate every mode on it."""
    with running_server(workdir / "db") as paths:
        log.info("indexing %s", runbooks)
        run = index_corpus(paths, runbooks, args.index_timeout)
        log.info("indexed %d documents, %d chunks in %.1f s (%.1f chunks/s)",
                 run.documents, run.chunks, run.seconds, run.chunks_per_second)

        queries, dropped = answerable(all_queries, run.sources)
        if not queries:
            raise SystemExit("no alert's runbook is in the indexed corpus")
        # Latency depends on what else the machine runs; keep that with it.
        load_before = os.getloadavg()[0]
        startup, results = evaluate(paths, queries, args)
        load_after = os.getloadavg()[0]

    return {
        "indexing": {
            "documents": run.documents,
            "chunks": run.chunks,
            "seconds": round(run.seconds, 2),
            "chunks_per_s": round(run.chunks_per_second, 2),
            "indexer_embedding_chunks_per_s": (
                round(run.embedding_rate, 2) if run.embedding_rate else None
            ),
            "embedder": run.embedder,
            "dim": run.dim,
        },
        "queries": {"answerable": len(queries), "runbook_not_indexed": len(dropped)},
        **startup,
        "load_average_1min": [round(load_before, 2), round(load_after, 2)],
        "modes": {mode: result.summary() for mode, result in results.items()},
        "hybrid_misses": hybrid_misses(queries, results["hybrid"]),
    }


def print_report(report: dict, misses: list[dict] | None) -> None:
    base = report["corpus"]
    index = base["indexing"]
    print(f"\nRetrieval benchmark, code at commit {report['commit']} "
          f"({base['queries']['answerable']} alerts with their runbook indexed, "
          f"top-k {report['settings']['top_k']} chunks, MRR over the first "
          f"{MRR_CUTOFF} documents)\n")
    print(markdown_table(base["modes"]))
    rate = index["indexer_embedding_chunks_per_s"]
    print(f"\nIndexing: {index['documents']} documents, {index['chunks']} chunks in "
          f"{index['seconds']} s = {index['chunks_per_s']} chunks/s end to end"
          + (f" (the indexer's own pass: {rate} chunks/s)" if rate else "")
          + f"; embedder {index['embedder']} ({index['dim']} dims). "
          f"Reader start-up: index load {base['index_load_s']} s, first query "
          f"{base['first_query_s']} s (embedder cold start). Load average while "
          f"querying: {' -> '.join(map(str, base['load_average_1min']))} "
          f"on {os.cpu_count()} cores.")

    scale = report.get("scale")
    if scale:
        index = scale["indexing"]
        print(f"\nAt scale: {index['chunks']} chunks ({scale['copies']} copies), "
              f"indexed in {index['seconds']} s ({index['chunks_per_s']} chunks/s); "
              f"index load {scale['index_load_s']} s, first query "
              f"{scale['first_query_s']} s; load average while querying "
              f"{' -> '.join(map(str, scale['load_average_1min']))}\n")
        print(markdown_table(scale["modes"]))

    if misses is not None:
        print(f"\nHybrid misses ({len(misses)} alerts whose runbook was not first):")
        for miss in misses:
            rank = miss["rank"] or f">{MRR_CUTOFF}"
            print(f"  {miss['alert']}: expected {miss['expected']} (rank {rank}); "
                  f"got {', '.join(miss['top3'])}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logs.setup(args.verbose)
    if args.embedder:
        # The indexer subprocess inherits it, and the retriever in this
        # process embeds the queries with the same one.
        os.environ["OPS_EMBEDDER"] = args.embedder

    all_queries = load_alert_queries(args.alerts)
    log.info("%d alert rules with a runbook_url", len(all_queries))

    version_at_start = code_version()
    workdir = Path(tempfile.mkdtemp(prefix="ops-bench-", dir="/tmp"))
    try:
        base = measure_corpus(args, args.runbooks, all_queries, workdir / "base")
        report = {
            "commit": version_at_start,
            "settings": {"top_k": args.top_k, "budget": args.budget,
                         "warmup": args.warmup, "repeat": args.repeat,
                         "mrr_cutoff": MRR_CUTOFF},
            "alert_rules": len(all_queries),
            "corpus": base,
        }

        if args.scale:
            copies = math.ceil(args.scale / base["indexing"]["chunks"])
            replica = workdir / "replica"
            replicate_corpus(args.runbooks, replica, copies)
            log.info("scale run: %d copies of the corpus", copies)
            scale = measure_corpus(args, replica, all_queries, workdir / "scale")
            scale["copies"] = copies
            report["scale"] = scale
            if scale["indexing"]["chunks"] < args.scale:
                log.warning("the scaled index holds %d chunks, fewer than the "
                            "%d asked for: did chunking change during the run?",
                            scale["indexing"]["chunks"], args.scale)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    version_at_end = code_version()
    if version_at_end != version_at_start:
        # The indexer and retriever are read from disk at each step, so
        # figures from before and after an edit would be mixed.
        log.warning("the code under test changed during the run (%s, now %s): "
                    "run again for consistent figures",
                    version_at_start, version_at_end)
        report["commit_at_end"] = version_at_end

    print_report(report, base["hybrid_misses"] if args.misses else None)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nWrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
