"""``search "QUERY"``: ask the indexed runbooks a question from the shell.

Human output is a ranked list (source, heading path, score, snippet);
``--json`` prints one JSON list of chunks in rank order; ``--queries FILE``
answers one query per line in one process and prints one JSON list per
line, in the same order (a blank line gets ``[]``).
"""

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from incident_ops.errors import UserError
from incident_ops.retrieval import Context, HybridQuery, Retriever
from incident_ops.retrieval.query import MODES
from incident_ops.store import Store

DEFAULT_TOP_K = 5
DEFAULT_BUDGET = 1500
SNIPPET_CHARS = 160


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "search", help="search the indexed runbooks (hybrid, vector or keyword)"
    )
    parser.add_argument("query", nargs="?", help="what to search for")
    parser.add_argument("--db", help="database folder (default: $OPS_DB or ./ops_db)")
    parser.add_argument("--mode", choices=MODES, default="hybrid",
                        help="retrieval legs to use (default: hybrid)")
    parser.add_argument("--top-k", type=positive_int, default=DEFAULT_TOP_K,
                        help=f"most chunks to return (default: {DEFAULT_TOP_K})")
    parser.add_argument("--budget", type=positive_int, default=DEFAULT_BUDGET,
                        help=f"token budget for the chunks (default: {DEFAULT_BUDGET})")
    parser.add_argument("--json", action="store_true", help="print a JSON list")
    parser.add_argument("--queries", type=Path,
                        help="file with one query per line; prints one JSON list "
                             "per line")
    parser.set_defaults(run=run)


def positive_int(text: str) -> int:
    """An argparse type: a whole number above zero (a count, a token budget)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
    return value


def run(args: argparse.Namespace) -> int:
    queries = _queries(args)
    with Store.for_command(args.db) as store:
        retriever = Retriever(store)
        if args.queries is None:
            context = retriever.execute(_query(queries[0], args), mode=args.mode)
            if args.json:
                print(json.dumps(_as_json(context), ensure_ascii=False, indent=2))
            else:
                _print_ranked(context)
            return 0

        for text in queries:
            if not text.strip():
                print("[]")
                continue
            context = retriever.execute(_query(text, args), mode=args.mode)
            print(json.dumps(_as_json(context), ensure_ascii=False), flush=True)
    return 0


def _queries(args: argparse.Namespace) -> list[str]:
    if args.queries is not None and args.query is not None:
        raise UserError("give either a QUERY or --queries FILE, not both")
    if args.queries is None:
        if not args.query or not args.query.strip():
            raise UserError('give a query: python -m incident_ops search "QUERY"')
        return [args.query]
    try:
        return args.queries.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read queries from {args.queries}: {error}") from None


def _query(text: str, args: argparse.Namespace) -> HybridQuery:
    return HybridQuery.for_text(text, top_k=args.top_k, token_budget=args.budget)


def _as_json(context: Context) -> list[dict]:
    return [chunk.to_dict() for chunk in context.chunks]


def _print_ranked(context: Context) -> None:
    console = Console(highlight=False, soft_wrap=True)
    for rank, chunk in enumerate(context.chunks, start=1):
        heading = f"{chunk.title} > {chunk.heading}" if chunk.heading else chunk.title
        snippet = " ".join(chunk.text.split())
        if len(snippet) > SNIPPET_CHARS:
            snippet = snippet[:SNIPPET_CHARS].rstrip() + "..."
        console.print(
            f"[bold]{rank}.[/bold] [cyan]{escape(chunk.source)}[/cyan]  "
            f"{escape(heading)}  [dim]score {chunk.score:.4f}, "
            f"{chunk.tokens} tokens[/dim]"
        )
        if chunk.also_in:
            console.print(f"   [dim]also in: {escape(', '.join(chunk.also_in))}[/dim]")
        console.print(f"   {escape(snippet)}")
    summary = (f"{len(context.chunks)} chunks, {context.total_tokens} of "
               f"{context.budget} tokens (index version {context.index_version})")
    console.print(f"[dim]{escape(summary)}[/dim]")
    if context.note:
        print(f"note: {context.note}", file=sys.stderr)
