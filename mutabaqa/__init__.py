"""Mutabaqa application shell: settings, CLI, worker entrypoint, client factories, dev stack."""

__version__ = "0.1.0"
