"""A real ToonDB server holding the shipped runbooks, indexed by the real indexer.

Indexing loads the embedder and embeds every chunk (a few seconds), so
test modules share one such server per module rather than one per test.
"""

import shutil
from collections.abc import Iterator
from contextlib import contextmanager

from incident_ops import server as server_control
from tests.conftest import PROJECT_ROOT, RunningServer, run_project, short_tmpdir

RUNBOOKS = PROJECT_ROOT / "runbooks"


@contextmanager
def indexed_runbooks_server() -> Iterator[RunningServer]:
    folder = short_tmpdir("ops-plan-")
    running = RunningServer(server_control.ServerPaths.for_db(str(folder / "db")))
    running.start()
    try:
        indexed = run_project(
            ["process_b_indexer.py", "--once", "--runbooks", str(RUNBOOKS)],
            env=running.env(), timeout=180)
        assert indexed.returncode == 0, indexed.stderr
        yield running
    finally:
        running.stop()
        shutil.rmtree(folder, ignore_errors=True)
