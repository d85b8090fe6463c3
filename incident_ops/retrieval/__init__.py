"""Hybrid retrieval over the indexed runbooks."""
