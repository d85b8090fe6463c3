"""The catalog of mitigation actions the commander can request.

A plan's action names one of these kinds, or ``manual`` when no kind fits;
the collector's simulated service applies the kinds its model knows.
"""

CATALOG = {
    "rollback_deployment": "Roll back the most recent deployment",
    "restart_instances": "Rolling restart of the service's instances",
    "scale_out": "Add service instances",
    "scale_database": "Add database capacity (replicas, connection pool)",
    "shed_load": "Shed or rate-limit incoming traffic",
    "enable_circuit_breaker": "Trip the circuit breaker on a failing dependency",
}

MANUAL = "manual"


def is_known(kind: str) -> bool:
    return kind in CATALOG
