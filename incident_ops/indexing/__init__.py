"""Turning a runbook folder into indexed records in the shared store."""
