"""One module per ``python -m incident_ops`` command."""
