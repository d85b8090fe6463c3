"""Mitigation plans written from incident facts and retrieved runbooks."""
