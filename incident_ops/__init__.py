"""Incident response shared by three processes over one ToonDB server."""

NAMESPACE = "incident_ops"
