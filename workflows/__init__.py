"""Workflows decide: deterministic code, no I/O (activities do that)."""
