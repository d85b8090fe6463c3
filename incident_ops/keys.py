"""The shared key layout: every key family, and the one process that writes it.

The engine has no multi-key transactions and no compare-and-set, so
concurrent writers stay correct only by never writing the same key: each
family below has exactly one writer. Any process may read any family.
Families that grow are split into bounded sub-prefixes (hour buckets, one
record per document or incident) so that no single scan nears the engine's
16 MiB reply cap. Keys are relative to the ``incident_ops`` namespace.

The README's "Shared state" table mirrors this module.
"""

# collector
METRICS_LATEST = "metrics/latest"                 # newest sample + the last few
METRICS_HISTORY = "metrics/hist/"                 # + <YYYYMMDDHHMM>/<epoch_ms>
METRICS_PRUNED = "metrics/pruned"                 # history retention watermark
EVENTS = "events/"                                # + <YYYYMMDD>/<epoch_ms>-<kind>
EVENTS_PRUNED = "events/pruned"                   # events retention watermark
ACTIONS_APPLIED = "actions/applied/"              # + <request id>
SIMULATOR_STATE = "simulator/state"               # the simulated service, resumable

# indexer
RUNBOOK_INDEX = "runbooks/index"                  # manifest + index version
RUNBOOK_DOCS = "runbooks/docs/"                   # + <doc id>: chunks, vectors
RUNBOOK_VERSION = "runbooks/version"              # the version alone, for polling

# commander
INCIDENTS = "incidents/"                          # + <YYYYMM>/<incident id>: record
ACTIONS_REQUESTED = "actions/requests/"           # + <YYYYMMDD>/<request id>
COMMANDER_STATUS = "commander/status"             # active commander heartbeat

# `python -m incident_ops approve`
APPROVALS = "approvals/"                          # + <incident id>/<seq>
