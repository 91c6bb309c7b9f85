"""The stack canary: a durable timer, then an end-to-end check of the database and store.

Operators start one to prove that timers survive restarts and that workers reach every
dependency (``mutabaqa canary``); the test suite uses it across a dev-stack restart.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.system import SystemActivities
    from models.system import CanaryInput, CanaryResult


@workflow.defn(name="Canary")
class CanaryWorkflow:
    @workflow.run
    async def run(self, params: CanaryInput) -> CanaryResult:
        started_at = workflow.now()
        await workflow.sleep(timedelta(seconds=params.delay_seconds))
        fired_at = workflow.now()
        stack = await workflow.execute_activity_method(
            SystemActivities.check_stack,
            start_to_close_timeout=timedelta(seconds=30),
        )
        return CanaryResult(started_at=started_at, fired_at=fired_at, note=params.note, stack=stack)
