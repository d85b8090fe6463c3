"""A writer process for the store tests: puts keys and reports each ack.

Usage: python tests/store_writer.py SOCKET PREFIX COUNT [--same-key]

Prints one line per acknowledged put (``ack <key>``), so the parent test
knows exactly which writes the client confirmed, and exits 0 only if no
call raised.
"""

import sys

from incident_ops.store import Store


def main() -> int:
    socket_path, prefix, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    same_key = "--same-key" in sys.argv
    with Store(socket_path, deadline=60) as store:
        for i in range(count):
            key = f"{prefix}/shared" if same_key else f"{prefix}/{i:06d}"
            store.put(key, {"writer": prefix, "i": i})
            print(f"ack {key}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
