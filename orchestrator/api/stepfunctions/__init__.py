"""The Step Functions actions served, by name (the part of ``X-Amz-Target`` after the dot)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from orchestrator.api.stepfunctions import (
    activities,
    callbacks,
    executions,
    history,
    machines,
    sync,
    tags,
    test_state,
)
from orchestrator.api.stepfunctions.aliases import ALIAS_ACTIONS
from orchestrator.api.stepfunctions.context import StepFunctions
from orchestrator.api.stepfunctions.versions import VERSION_ACTIONS

Action = Callable[[StepFunctions, dict[str, Any]], dict[str, Any]]

ACTIONS: dict[str, Action] = {
    "CreateStateMachine": tags.create_state_machine,
    "DescribeStateMachine": machines.describe_state_machine,
    "UpdateStateMachine": machines.update_state_machine,
    "DeleteStateMachine": tags.delete_state_machine,
    "ListStateMachines": machines.list_state_machines,
    "ValidateStateMachineDefinition": machines.validate_state_machine_definition,
    "DescribeStateMachineForExecution": machines.describe_state_machine_for_execution,
    "StartExecution": executions.start_execution,
    "DescribeExecution": executions.describe_execution,
    "StopExecution": executions.stop_execution,
    "ListExecutions": executions.list_executions,
    "RedriveExecution": executions.redrive_execution,
    "GetExecutionHistory": history.get_execution_history,
    "SendTaskSuccess": callbacks.send_task_success,
    "SendTaskFailure": callbacks.send_task_failure,
    "SendTaskHeartbeat": callbacks.send_task_heartbeat,
    "TagResource": tags.tag_resource,
    "UntagResource": tags.untag_resource,
    "ListTagsForResource": tags.list_tags_for_resource,
    "TestState": test_state.test_state,
    "CreateActivity": activities.create_activity,
    "DescribeActivity": activities.describe_activity,
    "ListActivities": activities.list_activities,
    "DeleteActivity": activities.delete_activity,
    "GetActivityTask": activities.get_activity_task,
    "StartSyncExecution": sync.start_sync_execution,
    **VERSION_ACTIONS,
    **ALIAS_ACTIONS,
}

__all__ = ["ACTIONS", "Action", "StepFunctions"]
