"""Chunking keeps structure: titles, heading paths, splits, merges, front matter."""

from incident_ops.indexing.chunking import (
    chunk_document,
    search_text,
    split_front_matter,
    strip_markup,
)
from incident_ops.tokens import count_tokens

MEMORY_LEAK = """\
# Memory leak

Memory grows for hours until the process is killed.

## Symptoms

Resident memory rises in a straight line and never returns to its baseline,
garbage collection pauses grow, and p99 latency follows them up over hours.
Containers restart with reason OOMKilled and the restart count keeps rising.

## Mitigation

### Immediate actions

Restart affected instances one at a time with a rolling restart, so that
memory is reset without dropping traffic, and watch that latency recovers.
"""


def test_chunk_keeps_title_and_heading_path():
    document = chunk_document(MEMORY_LEAK, fallback_title="unused", min_tokens=1)

    assert document.title == "Memory leak"
    restart = next(c for c in document.chunks if "Restart affected" in c.text)
    assert restart.heading == "Mitigation > Immediate actions"
    # What the embedder and BM25 see names the runbook and the section.
    seen = search_text(document.title, restart.heading, restart.text)
    assert seen.startswith("Memory leak > Mitigation > Immediate actions\n")


def test_front_matter_is_metadata_not_text():
    text = (
        "---\ntitle: Disk full\nservice: platform\ntags: [disk, node]\n---\n"
        "# Cleaning up\n\nVacuum the journal and prune unused images.\n"
    )
    document = chunk_document(text, fallback_title="unused")

    assert document.title == "Disk full"
    assert document.metadata == {
        "title": "Disk full", "service": "platform", "tags": ["disk", "node"],
    }
    all_text = " ".join(c.text + c.heading for c in document.chunks)
    assert "service" not in all_text and "platform" not in all_text
    assert "Vacuum the journal" in all_text


def test_invalid_front_matter_is_still_left_out_of_the_text():
    metadata, body = split_front_matter("---\ntitle: [unclosed\n---\nBody text.\n")

    assert metadata == {}
    assert body == "Body text.\n"


def test_title_falls_back_to_the_file_name_without_headings():
    document = chunk_document("Just one line of advice.\n", fallback_title="notes")

    assert document.title == "notes"
    assert [c.text for c in document.chunks] == ["Just one line of advice."]


def test_long_section_is_split_with_overlap():
    lines = [f"Step {n}: check the replica lag on database shard {n} now." for n in
             range(60)]
    text = "# Shards\n\n## Checks\n\n" + "\n".join(lines) + "\n"

    document = chunk_document(text, "x", max_tokens=120, overlap_tokens=30)

    assert len(document.chunks) >= 4
    assert all(c.tokens <= 120 for c in document.chunks)
    assert all(c.heading == "Checks" for c in document.chunks)
    for before, after in zip(document.chunks, document.chunks[1:], strict=False):
        last_line = before.text.splitlines()[-1]
        assert last_line in after.text.splitlines()[:3], "pieces must overlap"
    # Nothing is lost: every line is in some chunk.
    joined = "\n".join(c.text for c in document.chunks)
    assert all(line in joined for line in lines)


def test_one_enormous_line_is_split_between_words():
    text = "# Log\n\n" + " ".join(f"word{n}" for n in range(3000)) + "\n"

    document = chunk_document(text, "x", max_tokens=200)

    assert len(document.chunks) > 5
    assert all(c.tokens <= 200 for c in document.chunks)


def test_a_long_single_line_of_short_words_stays_within_the_limit():
    line = " ".join(f"w{n % 97}" for n in range(40_000))

    document = chunk_document(line + "\n", "x", max_tokens=120, overlap_tokens=20)

    assert len(document.chunks) > 100
    assert max(c.tokens for c in document.chunks) <= 120 + 20


def test_a_word_longer_than_the_limit_is_cut_by_tokens_and_nothing_is_lost():
    blob = "".join(chr(ord("A") + (n * 7) % 26) for n in range(50_000))
    text = f"# Certificate\n\nThe bundle follows.\n\n{blob}\n\nThen restart.\n"

    document = chunk_document(text, "x", max_tokens=120, overlap_tokens=20)

    assert max(c.tokens for c in document.chunks) <= 120 + 20
    assert len(document.chunks) > 50
    joined = "".join("".join(c.text.split()) for c in document.chunks)
    assert blob in joined.replace("Thebundlefollows.", "")


def test_tiny_fragments_are_merged_not_dropped():
    text = (
        "# Runbook\n\n## Meaning\n\nThe job failed.\n\n## Impact\n\nNo backups.\n\n"
        "## Diagnosis\n\nCheck the job's pod logs.\n"
    )

    document = chunk_document(text, "x", min_tokens=60)

    assert len(document.chunks) == 1
    only = document.chunks[0]
    assert only.heading == "Meaning, Impact, Diagnosis"
    for words in ("The job failed.", "## Impact", "No backups.", "pod logs"):
        assert words in only.text


def test_hash_lines_in_code_blocks_are_not_headings():
    text = (
        "# Restart\n\n## Steps\n\n```bash\n# drain the node first\n"
        "kubectl drain node-1\n```\n"
    )

    document = chunk_document(text, "x", min_tokens=1)

    assert [c.heading for c in document.chunks] == ["Steps"]
    assert "# drain the node first" in document.chunks[0].text


def test_plain_text_with_underlined_headings():
    text = (
        "Certificate expiry\n==================\n\n"
        "Renewal\n-------\n\nRun certbot renew on the edge hosts.\n"
    )

    document = chunk_document(text, "x", min_tokens=1)

    assert document.title == "Certificate expiry"
    assert [c.heading for c in document.chunks] == ["Renewal"]


def test_chunk_token_counts_match_tiktoken():
    document = chunk_document(MEMORY_LEAK, "x")

    assert all(c.tokens == count_tokens(c.text) for c in document.chunks)


def test_markup_is_not_searchable_text():
    text = ('See [Debugging Pods](https://kubernetes.io/docs/debug) and '
            '[the other runbook]({{< ref "./Other.md" >}}) <b>now</b>.')

    assert strip_markup(text).split() == [
        "See", "Debugging", "Pods", "and", "the", "other", "runbook", "now", ".",
    ]


def test_a_section_just_over_the_limit_splits_evenly():
    lines = [f"Check replica {n} for lag and restart it if it is stuck." for n in
             range(12)]
    text = "# Replicas\n\n## Checks\n\n" + "\n".join(lines) + "\n"

    document = chunk_document(text, "x", max_tokens=120, overlap_tokens=20)

    sizes = [c.tokens for c in document.chunks]
    assert len(sizes) == 2
    assert min(sizes) > 0.6 * max(sizes), f"uneven pieces: {sizes}"


def test_a_stray_intro_joins_the_next_section_beyond_the_limit():
    intro = "Use this runbook when a release goes bad."
    symptoms = " ".join(["Latency and errors climb after the deploy."] * 12)
    text = f"# Rollback\n\n{intro}\n\n## Symptoms\n\n{symptoms}\n"

    document = chunk_document(text, "x", max_tokens=120, min_tokens=60)

    assert len(document.chunks) == 1
    assert document.chunks[0].text.startswith(intro)
    assert 120 < document.chunks[0].tokens <= 180
