"""The one client every process uses to reach the shared ToonDB server.

It adds to ``sochdb.IpcClient`` what the engine lacks (see README, "What
ToonDB guarantees"):

- namespaces as validated key prefixes, values as JSON (never empty, since
  the engine reads an empty value as a missing key);
- a transparent reconnect when the server dropped an idle connection (it
  does after 30 s) or restarted, and a wait of up to ``deadline`` seconds
  while it is down, then one error that names the socket;
- bounded retries with backoff on the engine's write-write conflicts;
- a size cap on values, checked before anything is sent, and a dropped and
  reopened connection after any protocol error (a reply over the engine's
  16 MiB frame cap leaves the connection desynchronised).
"""

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sochdb.errors import ConnectionError as EngineConnectionError
from sochdb.errors import DatabaseError, ProtocolError
from sochdb.ipc_client import IpcClient

from incident_ops import config

log = logging.getLogger(__name__)

SEPARATOR = "/"

# The engine frames every message at 16 MiB. A value must leave room for the
# rest of a scan reply that carries it, so the cap is half the frame.
ENGINE_FRAME_BYTES = 16 * 1024 * 1024
MAX_VALUE_BYTES = ENGINE_FRAME_BYTES // 2

# Keys over 65,535 bytes vanish from the engine's scan replies.
MAX_KEY_BYTES = 1024

DEFAULT_DEADLINE_S = 30.0
# A command typed in a shell should fail fast when the server is down, not
# wait out the long-running processes' deadline.
COMMAND_DEADLINE_S = 5.0
# Inside a long-running process's loop, a call gives up quickly so that an
# outage is logged and a stop signal honoured within seconds; the loop
# retries on its next turn. Start-up keeps the full deadline, which gives a
# server started alongside time to answer.
LOOP_DEADLINE_S = 2.0
IO_TIMEOUT_S = 15.0
CONFLICT_RETRIES = 8

T = TypeVar("T")


class StoreError(Exception):
    """A store call failed in a way the caller must hear about."""


class StoreUnavailable(StoreError):
    """The server did not answer within the deadline."""


class ValueTooLarge(StoreError):
    """A value over the client's cap, refused before it was sent."""


class NamespaceError(StoreError):
    """A namespace name that would let two key spaces overlap."""


_registered_namespaces: set[str] = set()
_registry_lock = threading.Lock()


def validate_namespace(name: str) -> str:
    """Register ``name`` for this process, refusing overlapping names.

    The engine has no namespaces, only keys. A namespace is the prefix
    ``name/``; a name that contains the separator, or that is a prefix of
    another registered name (``ops`` and ``ops_metrics``), could make one
    family's prefix scan read another's keys, so it is refused.
    """
    if not name or not name.replace("_", "").replace("-", "").isalnum():
        raise NamespaceError(
            f"namespace {name!r} must be letters, digits, '_' or '-' only"
        )
    with _registry_lock:
        for other in _registered_namespaces:
            if other == name:
                return name
            if other.startswith(name) or name.startswith(other):
                raise NamespaceError(
                    f"namespace {name!r} overlaps {other!r}: one is a prefix "
                    "of the other, so their key scans would mix"
                )
        _registered_namespaces.add(name)
    return name


class Store:
    """JSON records under one namespace on a ToonDB IPC server.

    Keys are given relative to the namespace (``metrics/latest``). Every
    call either succeeds, raises ``StoreUnavailable`` after ``deadline``
    seconds without a server, or raises ``StoreError`` with a message a
    user can act on. The client is safe to share between threads.
    """

    def __init__(
        self,
        socket_path: Path | str,
        namespace: str = "incident_ops",
        deadline: float | None = None,
    ):
        self.socket_path = str(socket_path)
        self.namespace = validate_namespace(namespace)
        if deadline is None:
            deadline = config.env_float("OPS_STORE_DEADLINE", DEFAULT_DEADLINE_S)
        self.deadline = deadline
        self._prefix = namespace + SEPARATOR
        self._client: IpcClient | None = None
        self._lock = threading.RLock()

    @classmethod
    def open(cls, db: str | None = None, **kwargs: Any) -> "Store":
        """The store for ``--db DIR`` / ``OPS_DB``, as every process finds it."""
        return cls(config.socket_path(config.db_dir(db)), **kwargs)

    @classmethod
    def for_command(cls, db: str | None = None) -> "Store":
        """The store for a user command: the same server, a short deadline."""
        deadline = config.env_float("OPS_STORE_DEADLINE", COMMAND_DEADLINE_S)
        return cls.open(db, deadline=deadline)

    def close(self) -> None:
        with self._lock:
            self._drop_connection()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- records ---------------------------------------------------------

    def put(self, key: str, value: Any) -> None:
        """Write one JSON record; atomic and durable once this returns."""
        full_key = self._full_key(key)
        encoded = encode_value(value, key)
        self._call(lambda client: client.put(full_key, encoded))

    def get(self, key: str, default: Any = None) -> Any:
        """The record at ``key``, or ``default`` when there is none."""
        full_key = self._full_key(key)
        raw = self._call(lambda client: client.get(full_key))
        if raw is None:
            return default
        return decode_value(raw, key)

    def delete(self, key: str) -> None:
        full_key = self._full_key(key)
        self._call(lambda client: client.delete(full_key))

    def scan(self, prefix: str) -> dict[str, Any]:
        """Every record under ``prefix``, keyed relative to the namespace.

        One scan is one engine reply, capped at 16 MiB: key families that
        can grow are laid out under sub-prefixes (hour buckets, shards) so
        that callers scan one bounded piece at a time.
        """
        if not prefix.strip(SEPARATOR):
            raise StoreError(
                "refusing to scan the whole namespace: name a key family"
            )
        full_prefix = self._prefix + prefix
        rows = self._call(lambda client: client.scan(full_prefix))
        records = {}
        for row in rows:
            key = row["key"].decode("utf-8", errors="replace")
            relative = key[len(self._prefix):]
            records[relative] = decode_value(row["value"], relative)
        return records

    def ping(self) -> float:
        """Round-trip time to the server in seconds."""
        return self._call(lambda client: client.ping())

    # -- connection handling ---------------------------------------------

    def _full_key(self, key: str) -> bytes:
        if not key or key.startswith(SEPARATOR):
            raise StoreError(f"invalid key {key!r}: give a path such as 'a/b'")
        encoded = (self._prefix + key).encode("utf-8")
        if len(encoded) > MAX_KEY_BYTES:
            raise StoreError(
                f"key {key[:60]!r}... is {len(encoded)} bytes, over the "
                f"{MAX_KEY_BYTES}-byte limit"
            )
        return encoded

    def _call(self, operation: Callable[[IpcClient], T]) -> T:
        """Run ``operation`` on a live connection, riding out outages.

        Lost connections are reopened and the call repeated until the
        deadline. Puts and deletes are idempotent, so repeating one whose
        acknowledgement was lost is safe. Write-write conflicts are retried
        a bounded number of times with jittered backoff.
        """
        give_up_at = time.monotonic() + self.deadline
        conflicts = 0
        backoff = 0.05
        last_error: Exception | None = None

        while True:
            with self._lock:
                try:
                    client = self._connection()
                    return operation(client)
                except DatabaseError as error:
                    if "conflict" not in str(error).lower():
                        raise StoreError(f"ToonDB refused the call: {error}") from None
                    conflicts += 1
                    if conflicts > CONFLICT_RETRIES:
                        raise StoreError(
                            f"write conflict persisted after {CONFLICT_RETRIES} "
                            "retries: another process writes the same key"
                        ) from None
                    last_error = error
                except ProtocolError as error:
                    self._drop_connection()
                    if "too large" in str(error).lower():
                        raise StoreError(
                            "the server's reply exceeded the engine's 16 MiB "
                            "frame cap; scan a narrower prefix"
                        ) from None
                    last_error = error
                except (EngineConnectionError, OSError) as error:
                    self._drop_connection()
                    last_error = error

            now = time.monotonic()
            if now >= give_up_at:
                raise StoreUnavailable(
                    f"ToonDB server not reachable at {self.socket_path} "
                    f"after {self.deadline:g} s ({last_error}); "
                    "start it with ./start_server.sh"
                )
            log.debug("store call failed (%s); retrying", last_error)
            time.sleep(min(backoff * random.uniform(0.5, 1.5), give_up_at - now))
            backoff = min(backoff * 2, 1.0)

    def _connection(self) -> IpcClient:
        if self._client is None:
            self._client = IpcClient.connect(self.socket_path, timeout=IO_TIMEOUT_S)
        return self._client

    def _drop_connection(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def encode_value(value: Any, key: str) -> bytes:
    """JSON bytes for ``value``; refuses values over the cap."""
    encoded = json.dumps(value, separators=(",", ":"), allow_nan=False).encode()
    if len(encoded) > MAX_VALUE_BYTES:
        raise ValueTooLarge(
            f"value for {key!r} is {len(encoded):,} bytes, over the client's "
            f"cap of {MAX_VALUE_BYTES:,} (half the engine's 16 MiB frame); "
            "split it across several keys"
        )
    return encoded


def decode_value(raw: bytes, key: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        raise StoreError(
            f"record {key!r} is not JSON: was it written by another program?"
        ) from None
