"""Store client overhead: puts/s and gets/s through ``Store`` and raw IpcClient.

Starts its own ToonDB server in a temporary folder, then, for 1 and for 3
concurrent writer processes, runs the same workload through a bare
``sochdb.IpcClient`` loop and through the project's ``Store`` (JSON values,
namespaced keys, retry wrapper), and prints the client/raw ratio. The
target is a ratio of at least 0.8 (the client costs at most 20 %).

    python bench/store_bench.py [--puts 2000] [--gets 5000] [--rounds 5]

Raw and client rounds alternate, and each figure is the median over the
rounds: with several writers each put mostly waits for the engine's group
commit (about 21 ms), whose timing varies far more between rounds than
the client's few microseconds of JSON and bookkeeping.
"""

import argparse
import json
import multiprocessing
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sochdb.ipc_client import IpcClient  # noqa: E402

from incident_ops import server  # noqa: E402
from incident_ops.store import Store  # noqa: E402

RECORD = {"latency_p99_ms": 350.0, "error_rate_pct": 1.2, "cpu_pct": 45.3,
          "at": "2026-01-04T18:00:00+00:00", "interval_s": 5.0}


def raw_worker(socket_path: str, tag: str, puts: int, gets: int, out) -> None:
    value = json.dumps(RECORD).encode()
    client = IpcClient.connect(socket_path)
    started = time.perf_counter()
    for i in range(puts):
        client.put(f"incident_ops/bench/{tag}/{i:06d}".encode(), value)
    put_s = time.perf_counter() - started

    started = time.perf_counter()
    for i in range(gets):
        json.loads(client.get(f"incident_ops/bench/{tag}/{i % puts:06d}".encode()))
    get_s = time.perf_counter() - started
    client.close()
    out.put((puts / put_s, gets / get_s))


def store_worker(socket_path: str, tag: str, puts: int, gets: int, out) -> None:
    store = Store(socket_path)
    started = time.perf_counter()
    for i in range(puts):
        store.put(f"bench/{tag}/{i:06d}", RECORD)
    put_s = time.perf_counter() - started

    started = time.perf_counter()
    for i in range(gets):
        store.get(f"bench/{tag}/{i % puts:06d}")
    get_s = time.perf_counter() - started
    store.close()
    out.put((puts / put_s, gets / get_s))


def run(worker, socket_path: str, writers: int, puts: int, gets: int,
        round_no: int) -> tuple[float, float]:
    """Total puts/s and gets/s over ``writers`` processes running at once."""
    out = multiprocessing.Queue()
    name = worker.__name__.split("_")[0]
    processes = [
        multiprocessing.Process(
            target=worker,
            args=(socket_path, f"{name}{round_no}w{n}", puts, gets, out),
        )
        for n in range(writers)
    ]
    for process in processes:
        process.start()
    results = [out.get() for _ in processes]
    for process in processes:
        process.join()
    return sum(r[0] for r in results), sum(r[1] for r in results)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--puts", type=int, default=2000,
                        help="puts per writer with one writer")
    parser.add_argument("--gets", type=int, default=5000, help="gets per process")
    parser.add_argument("--rounds", type=int, default=5,
                        help="alternating raw/client rounds; medians are kept")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="ops-bench-", dir="/tmp"))
    paths = server.ServerPaths.for_db(str(folder / "db"))
    server.start_daemon(paths)
    socket_path = str(paths.socket)
    try:
        print("| writers | path | puts/s | gets/s |")
        print("|---|---|---|---|")
        ratios = []
        for writers in (1, 3):
            # With several writers each put waits ~21 ms for the engine's
            # group commit, so fewer puts keep the run short.
            puts = args.puts if writers == 1 else max(args.puts // 8, 50)
            rounds = {"raw": [], "client": []}
            for round_no in range(args.rounds):
                for label, worker in (("raw", raw_worker), ("client", store_worker)):
                    rounds[label].append(run(worker, socket_path, writers, puts,
                                             args.gets, round_no))
            best = {
                label: (statistics.median(r[0] for r in results),
                        statistics.median(r[1] for r in results))
                for label, results in rounds.items()
            }
            for label in ("raw", "client"):
                put_rate, get_rate = best[label]
                print(f"| {writers} | {label} | {put_rate:,.0f} | {get_rate:,.0f} |")
            put_ratio = best["client"][0] / best["raw"][0]
            get_ratio = best["client"][1] / best["raw"][1]
            ratios += [put_ratio, get_ratio]
            print(f"| {writers} | client/raw | {put_ratio:.2f} | {get_ratio:.2f} |")
        verdict = "meets" if min(ratios) >= 0.8 else "MISSES"
        print(f"\nlowest client/raw ratio {min(ratios):.2f}: {verdict} the 0.8 target")
        return 0
    finally:
        server.stop(paths)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
