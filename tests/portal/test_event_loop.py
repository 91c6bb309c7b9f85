"""No blocking database work on the event loop in the portal's async routes.

An ``async def`` in ``api/portal/*.py`` may not call, directly, a function that reads the
database synchronously: ``current_session``, a context's ``.session()``, the JSON API's
sync dependency ``get_user``, or any sync function of the portal that (transitively) calls
one of those (the page re-render helpers...). It awaits them through ``portal_session``,
``ctx.read``/``ctx.write`` or ``run_in_threadpool`` instead. Nested sync functions and
lambdas inside an async def are what runs in the thread pool: they are not looked into.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PORTAL = Path(__file__).resolve().parents[2] / "api" / "portal"
#: Synchronous functions that open a database session (outside the portal's modules).
BLOCKING = {"current_session", "session", "get_user"}


def _modules() -> dict[str, ast.Module]:
    return {p.name: ast.parse(p.read_text()) for p in sorted(PORTAL.glob("*.py"))}


def _called(node: ast.AST) -> Iterator[str]:
    """Names called in ``node``'s own body (not in nested functions or lambdas)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        if isinstance(child, ast.Call):
            func = child.func
            if isinstance(func, ast.Name):
                yield func.id
            elif isinstance(func, ast.Attribute):
                yield func.attr
        yield from _called(child)


def _functions(tree: ast.Module) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def blocking_names() -> set[str]:
    """``BLOCKING`` and every sync portal function that calls one of them, to a fixpoint."""
    sync = [f for tree in _modules().values() for f in _functions(tree)]
    sync = [f for f in sync if isinstance(f, ast.FunctionDef)]
    names = set(BLOCKING)
    while True:
        more = {f.name for f in sync if f.name not in names and names & set(_called(f))}
        if not more:
            return names
        names |= more


def test_the_blocking_list_knows_the_portal_helpers() -> None:
    """The derived list holds the sync helpers that read the database (so the check bites)."""
    assert {
        "current_session",
        "signed_in",
        "technician",
        "_request_page",
        "show_request_page",
        "results_page",
        "sample_page",
        "_users_page",
        "_webhook_page",
        "_certificate_page",
    } <= blocking_names()


def test_no_async_portal_function_blocks_on_the_database() -> None:
    names = blocking_names()
    offenders = [
        f"{module}:{f.lineno} {f.name} calls {sorted(names & set(_called(f)))}"
        for module, tree in _modules().items()
        for f in _functions(tree)
        if isinstance(f, ast.AsyncFunctionDef) and names & set(_called(f))
    ]
    assert offenders == []
