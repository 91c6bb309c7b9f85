"""Retries that end: every activity policy of the workflows is bounded and refuses to retry
what a retry cannot mend; activities check with typed failures, never ``assert`` or a bare
``.one()`` (which would retry a missing row until the policy gives up, or for ever)."""

from __future__ import annotations

import ast
from pathlib import Path

from temporalio.common import RetryPolicy

from activities import errors
from domain.keys import client_key, system_key, update_id
from workflows import retries

ROOT = Path(__file__).resolve().parents[2]


def _sources(folder: str) -> list[Path]:
    return sorted((ROOT / folder).glob("*.py"))


def test_every_policy_of_the_workflows_is_bounded_and_lists_the_non_retryable_types() -> None:
    policies = [v for v in vars(retries).values() if isinstance(v, RetryPolicy)]
    assert policies
    for policy in policies:
        assert policy.maximum_attempts > 0, policy
        assert set(errors.NON_RETRYABLE) <= set(policy.non_retryable_error_types or []), policy


def test_workflows_build_no_retry_policy_of_their_own() -> None:
    """One module holds the policies (``workflows/retries.py``)."""
    for path in _sources("workflows"):
        if path.name == "retries.py":
            continue
        calls = [
            node
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "RetryPolicy"
        ]
        assert not calls, f"{path.name} builds a RetryPolicy: use workflows/retries.py"


def test_activities_use_no_assert_and_no_bare_one() -> None:
    found: list[str] = []
    for path in _sources("activities"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Assert):
                found.append(f"{path.name}:{node.lineno} assert")
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "one"
                and not node.args
            ):
                found.append(f"{path.name}:{node.lineno} .one()")
    assert not found, found


def test_client_and_system_keys_never_meet() -> None:
    assert client_key("intake:1") == "client:intake:1"
    assert system_key("intake", 1) == "system:intake:1"
    assert client_key("system:intake:1") != system_key("intake", 1)
    assert update_id("client:k", "ab" * 32) != update_id("client:k", "cd" * 32)
    assert update_id("client:k", "ab" * 32) == update_id("client:k", "ab" * 32)
