"""Repositories over the record, shared by activities, the API and the command line (no
activities, no workflows here)."""
