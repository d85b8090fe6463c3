"""The indexer and search command as real processes against a real server."""

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from incident_ops import keys
from tests.conftest import PROJECT_ROOT, python_command, run_project, short_tmpdir

SUMMARY = re.compile(
    r"indexed (\d+) runbooks \((\d+) chunks, (\d+) embedded, (\d+) unchanged\), "
    r"(\d+) skipped, (\d+) failed in [\d.]+ s"
)

GOOD_RUNBOOK = """\
---
title: Queue backlog
service: orders
---
# Queue backlog

## Symptoms

Consumer lag on the orders topic keeps growing.

## Mitigation

Add consumers to the consumer group.
"""


@pytest.fixture
def folder():
    path = short_tmpdir("rb-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def summary_of(stderr: str) -> tuple[int, ...]:
    matches = SUMMARY.findall(stderr)
    assert matches, f"no summary line in:\n{stderr}"
    return tuple(int(n) for n in matches[-1])


def index_once(toondb, folder, **env):
    return run_project(["process_b_indexer.py", "--once", "--runbooks", str(folder)],
                       env=toondb.env(**env))


def start_watcher(toondb, folder) -> subprocess.Popen:
    """A watching indexer polling ``folder`` every 0.3 s, stderr piped."""
    return subprocess.Popen(
        python_command("process_b_indexer.py", "--runbooks", str(folder),
                       "--poll", "0.3"),
        cwd=PROJECT_ROOT, env=toondb.env(), stderr=subprocess.PIPE, text=True,
    )


def search(toondb, *args, **env):
    return run_project(["-m", "incident_ops", "search", *args], env=toondb.env(**env))


def test_bad_files_are_reported_and_the_rest_indexed(toondb, folder):
    (folder / "queue.md").write_text(GOOD_RUNBOOK)
    (folder / "nested").mkdir()
    (folder / "nested" / "notes.txt").write_text("Rotate the API keys every 90 days.\n")
    (folder / "latin1.md").write_bytes("# Caf\xe9 outage\n\nThe caf\xe9 is down.\n"
                                       .encode("latin-1"))
    (folder / "image.md").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 20)
    (folder / "empty.md").write_text("  \n\n")
    (folder / "huge.txt").write_text("lots of words " * 400)
    (folder / "slides.pdf").write_bytes(b"%PDF-1.4")
    (folder / "only-front-matter.md").write_text("---\ntitle: Nothing\n---\n")

    result = index_once(toondb, folder, OPS_RUNBOOK_MAX_BYTES="4000")

    assert result.returncode == 0, result.stderr
    runbooks, chunks, embedded, unchanged, skipped, failed = summary_of(result.stderr)
    assert (runbooks, skipped, failed) == (3, 5, 0)
    assert embedded == chunks and unchanged == 0
    for name in ("image.md", "empty.md", "huge.txt", "slides.pdf",
                 "only-front-matter.md"):
        lines = [line for line in result.stderr.splitlines()
                 if "WARNING" in line and f"skipped {name}" in line]
        assert len(lines) == 1, (name, result.stderr)
    assert "latin1.md: not valid UTF-8" in result.stderr

    found = search(toondb, "cafe outage", "--json", "--mode", "keyword")
    assert found.returncode == 0, found.stderr
    chunks_found = json.loads(found.stdout)
    assert chunks_found[0]["source"] == "latin1.md"
    assert "\ufffd" in chunks_found[0]["text"]


def test_second_pass_embeds_nothing_and_search_returns_json(toondb, folder):
    (folder / "queue.md").write_text(GOOD_RUNBOOK)
    shutil.copytree(PROJECT_ROOT / "runbooks", folder / "demo")
    first = index_once(toondb, folder)
    assert first.returncode == 0, first.stderr

    second = index_once(toondb, folder)

    runbooks, chunks, embedded, unchanged, _, _ = summary_of(second.stderr)
    assert embedded == 0 and unchanged == chunks == summary_of(first.stderr)[1]
    assert "embedding" not in second.stderr
    assert "index version 1" in second.stderr

    result = search(toondb, "consumer lag keeps growing", "--json", "--top-k", "3")
    assert result.returncode == 0, result.stderr
    hits = json.loads(result.stdout)
    assert 1 <= len(hits) <= 3
    assert hits[0]["source"] == "queue.md"
    assert hits[0]["title"] == "Queue backlog"
    for hit in hits:
        assert {"chunk_id", "source", "heading", "score", "tokens", "text"} <= set(hit)
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits),
                                                reverse=True)

    human = search(toondb, "roll back the release")
    assert human.returncode == 0, human.stderr
    assert human.stdout.startswith("1. demo/deployment-rollback.md")
    assert "of 1500 tokens" in human.stdout


def test_search_answers_a_file_of_queries_one_line_each(toondb, folder):
    (folder / "queue.md").write_text(GOOD_RUNBOOK)
    assert index_once(toondb, folder).returncode == 0
    queries = folder / "queries.txt"
    queries.write_text("consumer lag\n\nadd consumers\n")

    result = search(toondb, "--queries", str(queries), "--top-k", "1")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    assert json.loads(lines[1]) == []
    assert json.loads(lines[0])[0]["source"] == "queue.md"
    assert len(json.loads(lines[2])) == 1


def test_search_errors_in_one_line(toondb, folder):
    nothing = search(toondb, "anything")
    assert nothing.returncode == 1
    assert nothing.stderr.count("\n") == 1
    assert "process_b_indexer.py --once" in nothing.stderr

    toondb.stop()
    down = search(toondb, "anything", OPS_STORE_DEADLINE="1")
    assert down.returncode == 1
    assert down.stderr.count("\n") == 1
    assert "not reachable" in down.stderr and "start_server.sh" in down.stderr


def test_indexer_exits_nonzero_when_the_server_is_down(toondb, folder):
    (folder / "queue.md").write_text(GOOD_RUNBOOK)
    toondb.stop()

    result = index_once(toondb, folder, OPS_STORE_DEADLINE="1")

    assert result.returncode == 1
    assert "not reachable" in result.stderr


def test_watching_applies_edits_and_deletions_then_stops_on_sigterm(toondb, folder):
    (folder / "queue.md").write_text(GOOD_RUNBOOK)
    (folder / "dns.md").write_text("# DNS\n\nRestart CoreDNS on NXDOMAIN storms.\n")
    process = start_watcher(toondb, folder)
    log = _LogReader(process)
    try:
        log.wait_for("index version 1", timeout=60)

        path = folder / "queue.md"
        path.write_text(GOOD_RUNBOOK + "\n## Escalation\n\nPage the wombat team.\n")
        started = time.monotonic()
        _wait_for_search(toondb, "wombat", expect="queue.md")
        assert time.monotonic() - started < 10

        (folder / "dns.md").unlink()
        _wait_for_search(toondb, "NXDOMAIN", expect=None)

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
        log.wait_for("stopped by signal", timeout=5)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_interrupted_first_pass_is_resumed(toondb, folder):
    # Enough runbooks that embedding takes seconds, so SIGINT lands mid-pass.
    for n in range(60):
        (folder / f"runbook-{n}.md").write_text(
            f"# Runbook {n}\n\n## Symptoms\n\nService {n} is slow.\n\n"
            f"## Mitigation\n\nScale out service {n} and check its database.\n")
    process = subprocess.Popen(
        python_command("process_b_indexer.py", "--once", "--verbose",
                       "--runbooks", str(folder)),
        cwd=PROJECT_ROOT, env=toondb.env(), stderr=subprocess.PIPE, text=True,
    )
    log = _LogReader(process)
    log.wait_for("stored runbook-", timeout=60)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 0

    resumed = index_once(toondb, folder)

    assert resumed.returncode == 0, resumed.stderr
    runbooks, chunks, embedded, unchanged, _, _ = summary_of(resumed.stderr)
    assert runbooks == 60
    assert "stopped before the index was complete" in log.text()
    # Records written before the stop are reused, not embedded again.
    assert 0 < embedded < chunks


def test_changing_the_embedder_reindexes_everything(toondb, folder):
    (folder / "queue.md").write_text(GOOD_RUNBOOK)
    (folder / "dns.md").write_text("# DNS\n\nRestart CoreDNS on NXDOMAIN storms.\n")
    first = index_once(toondb, folder)
    assert first.returncode == 0, first.stderr

    with _FakeEmbeddingServer() as server:
        openai_env = {
            "OPS_EMBEDDER": "openai",
            "OPENAI_BASE_URL": server.url,
            "OPENAI_API_KEY": "test-key",
            "OPENAI_EMBEDDING_MODEL": "hashed-words",
        }
        second = index_once(toondb, folder, **openai_env)
        assert second.returncode == 0, second.stderr
        runbooks, chunks, embedded, unchanged, _, _ = summary_of(second.stderr)
        assert embedded == chunks == summary_of(first.stderr)[1]
        assert "re-embedding every runbook" in second.stderr

        manifest = toondb.store().get(keys.RUNBOOK_INDEX)
        assert manifest["embedder"] == "openai:hashed-words"
        assert manifest["dim"] == _FakeEmbeddingServer.DIM

        # The reader embeds queries with the index's embedder, whatever
        # OPS_EMBEDDER says in its own environment.
        hits = search(toondb, "coredns", "--json", "--mode", "vector", **openai_env)
        assert hits.returncode == 0, hits.stderr
        assert json.loads(hits.stdout)[0]["source"] == "dns.md"
        assert server.requests, "the fake endpoint was never called"


# -- helpers ------------------------------------------------------------------


class _LogReader:
    """Collects a process's stderr on a thread so waits never block on a pipe."""

    def __init__(self, process: subprocess.Popen):
        self._lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(process,),
                                        daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen) -> None:
        for line in process.stderr:
            self._lines.append(line)

    def text(self) -> str:
        return "".join(self._lines)

    def wait_for(self, needle: str, timeout: float) -> None:
        give_up = time.monotonic() + timeout
        while needle not in self.text():
            assert time.monotonic() < give_up, f"{needle!r} not seen:\n{self.text()}"
            time.sleep(0.05)


def _wait_for_search(toondb, keyword: str, expect: str | None) -> None:
    from incident_ops.retrieval import HybridQuery, Retriever

    retriever = Retriever(toondb.store())
    give_up = time.monotonic() + 15
    while True:
        context = retriever.execute(HybridQuery.for_text(keyword), mode="keyword")
        sources = context.sources
        if (expect is None and not sources) or (expect and expect in sources):
            return
        assert time.monotonic() < give_up, f"{keyword!r}: still {sources}"
        time.sleep(0.2)


class _FakeEmbeddingServer:
    """An OpenAI-compatible /v1/embeddings on 127.0.0.1: hashed bags of words.

    Texts sharing words get close vectors, so search still ranks sensibly.
    """

    DIM = 64

    def __init__(self):
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(body)
                texts = body["input"]
                data = [{"object": "embedding", "index": i,
                         "embedding": outer.vector(text).tolist()}
                        for i, text in enumerate(texts)]
                reply = json.dumps({"object": "list", "data": data,
                                    "model": body["model"],
                                    "usage": {"prompt_tokens": 1, "total_tokens": 1}})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(reply.encode())

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}/v1"

    @classmethod
    def vector(cls, text: str) -> np.ndarray:
        vector = np.zeros(cls.DIM)
        for word in re.findall(r"[a-z]+", text.lower()):
            vector[int(hashlib.md5(word.encode()).hexdigest(), 16) % cls.DIM] += 1
        return vector

    def __enter__(self):
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc_info):
        self._server.shutdown()
        self._server.server_close()


@pytest.mark.parametrize("poll", ["inf", "nan", "0", "-1"])
def test_poll_must_be_a_positive_finite_number(poll, folder):
    result = run_project(["process_b_indexer.py", "--runbooks", str(folder),
                          "--poll", poll],
                         env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "argument --poll:" in result.stderr.splitlines()[-1]


def test_skip_and_folder_messages_name_the_real_problem(toondb, folder):
    (folder / "queue.md").write_text(GOOD_RUNBOOK)
    (folder / "heading-only.md").write_text("# Disk full\n")
    (folder / "bad-yaml.md").write_text("---\ntitle: [unclosed\n---\n# Disk\n\nText.\n")

    result = index_once(toondb, folder)

    assert result.returncode == 0, result.stderr
    assert "skipped heading-only.md: no text besides its title heading" in result.stderr
    assert "no text besides front matter" not in result.stderr
    assert "bad-yaml.md: front matter is not valid YAML, ignored:" in result.stderr

    a_file = folder / "queue.md"
    not_a_folder = run_project(["process_b_indexer.py", "--once", "--runbooks",
                                str(a_file)], env=toondb.env())
    assert not_a_folder.returncode == 1
    assert f"runbook folder {a_file} is a file, not a folder" in not_a_folder.stderr
    assert "does not exist" not in not_a_folder.stderr


def test_a_runbook_too_large_for_one_record_is_skipped_before_embedding(toondb, folder):
    (folder / "queue.md").write_text(GOOD_RUNBOOK)
    # Short words make many chunks per byte: each chunk's vector costs
    # about 2 KB of base64, so 4,000 chunks pass the 8 MiB record cap.
    words = " ".join(f"w{n % 89}" for n in range(4000 * 60))
    (folder / "dense.md").write_text("# Dense\n\n" + words + "\n")
    started = time.monotonic()

    result = index_once(toondb, folder)

    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 60
    [warning] = [line for line in result.stderr.splitlines() if "dense.md" in line]
    assert re.search(r"skipped dense\.md: it would need ~\d+ MB in the index "
                     r"\([\d,]+ chunks\), over the 8 MiB per-runbook record limit: "
                     r"split it into smaller files", warning), warning
    runbooks, chunks, embedded, _, skipped, failed = summary_of(result.stderr)
    assert (runbooks, skipped, failed) == (1, 1, 0)
    assert embedded == chunks < 10


def test_watching_indexer_stops_on_sigterm_while_the_server_is_down(toondb, folder):
    (folder / "queue.md").write_text(GOOD_RUNBOOK)
    process = start_watcher(toondb, folder)
    log = _LogReader(process)
    try:
        log.wait_for("index version 1", timeout=60)
        toondb.stop()
        # Let the watcher's next check start waiting for the dead server.
        time.sleep(1.0)

        process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        assert process.wait(timeout=10) == 0
        assert time.monotonic() - started < 5
        log.wait_for("stopped by signal", timeout=5)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_second_indexer_waits_as_standby_until_the_first_exits(toondb, folder):
    (folder / "queue.md").write_text(GOOD_RUNBOOK)
    watcher = start_watcher(toondb, folder)
    once = None
    try:
        _LogReader(watcher).wait_for("index version 1", timeout=60)
        once = subprocess.Popen(
            python_command("process_b_indexer.py", "--once", "--runbooks",
                           str(folder)),
            cwd=PROJECT_ROOT, env=toondb.env(), stderr=subprocess.PIPE, text=True,
        )
        once_log = _LogReader(once)
        once_log.wait_for(f"standby: another indexer is active (pid {watcher.pid})",
                          timeout=30)
        time.sleep(1.0)
        assert once.poll() is None, "the --once pass ran beside the watcher"

        watcher.send_signal(signal.SIGTERM)
        assert watcher.wait(timeout=15) == 0
        assert once.wait(timeout=60) == 0
        once_log.wait_for("indexed 1 runbooks", timeout=5)
        runbooks, chunks, embedded, unchanged, _, _ = summary_of(once_log.text())
        assert (runbooks, embedded, unchanged) == (1, 0, chunks)
        assert not (toondb.db / "indexer.pid").exists()
    finally:
        for process in (watcher, once):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
