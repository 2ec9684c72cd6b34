"""What a Task's ``Resource`` names: a Lambda function, lambda:invoke, a built-in service, or an activity."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
START_EXECUTION = "states:startExecution"
SERVICES = {
    "arn:aws:states:::sns:publish": "sns:publish",
    "arn:aws:states:::sqs:sendMessage": "sqs:sendMessage",
    "arn:aws:states:::states:startExecution": START_EXECUTION,
}
# The AWS SDK integrations of the same APIs ("Learning to use AWS service SDK integrations in
# Step Functions"): the API's answer alone as the result, Request Response or Wait for Callback.
SDK_PREFIX = "arn:aws:states:::aws-sdk:"
SDK_SERVICES = {
    SDK_PREFIX + "sns:publish": "sns:publish",
    SDK_PREFIX + "sqs:sendMessage": "sqs:sendMessage",
    SDK_PREFIX + "sfn:startExecution": START_EXECUTION,
}
CALLBACK_SUFFIX = ".waitForTaskToken"
SYNC_SUFFIX = ".sync"
SYNC_2_SUFFIX = ".sync:2"
# An activity's task waits for a worker's GetActivityTask, then its SendTask* answer.
ACTIVITY_ARN = re.compile(r"^arn:aws:states:[a-z0-9-]+:\d{12}:activity:([^:]+)$")


@dataclass(frozen=True, slots=True)
class Resource:
    """A parsed Task ``Resource``."""

    kind: str  # "lambda" (a function ARN or bare name), "invoke" (lambda:invoke), "service", "activity"
    target: str  # the function name (lambda), the service ("sns:publish") or the activity's name
    arn: str
    callback: bool = False
    # A nested execution's "Run a Job" flavour: 1 for .sync (its input and output as JSON
    # text), 2 for .sync:2 (as JSON values); 0 when the task does not wait for it to end.
    sync: int = 0
    sdk: bool = False  # an AWS SDK integration (aws-sdk:<service>:<action>) rather than the optimized one
    # Worked out once, for the history events of every task that runs it:
    event_prefix: str = field(init=False)  # "LambdaFunction" or "Task"
    scheduled_event: str = field(init=False)  # "LambdaFunctionScheduled", "TaskScheduled"
    started_event: str = field(init=False)
    succeeded_event: str = field(init=False)
    short_name: str = field(init=False)  # "publish", "invoke"; the resource in Task events
    resource_type: str = field(init=False)  # "sns", "lambda"
    # What Task events (not LambdaFunction ones) say of the resource: resource, resourceType.
    event_details: dict[str, str] = field(init=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        is_service = self.kind == "service"
        short_name = self.target.split(":")[-1] if is_service else "invoke"
        if self.sync:
            short_name += SYNC_SUFFIX if self.sync == 1 else SYNC_2_SUFFIX
        resource_type = self.target.split(":")[0] if is_service else "lambda"
        if self.sdk:  # named as the ARN names the service: aws-sdk:sfn, not states
            resource_type = "aws-sdk:" + self.arn.removesuffix(CALLBACK_SUFFIX).split(":")[-2]
        plain = self.kind in ("lambda", "activity")
        details = {} if plain else {"resource": short_name, "resourceType": resource_type}
        prefix = {"lambda": "LambdaFunction", "activity": "Activity"}.get(self.kind, "Task")
        object.__setattr__(self, "event_prefix", prefix)
        object.__setattr__(self, "scheduled_event", prefix + "Scheduled")
        object.__setattr__(self, "started_event", prefix + "Started")
        object.__setattr__(self, "succeeded_event", prefix + "Succeeded")
        object.__setattr__(self, "short_name", short_name)
        object.__setattr__(self, "resource_type", resource_type)
        object.__setattr__(self, "event_details", details)


@functools.lru_cache(maxsize=1024)
def parse_resource(resource: str) -> Resource:
    """Read a Task's Resource string.

    Raises:
        ValueError: for a resource redstep cannot run, with what it accepts.
    """
    base, callback, sync = resource, False, 0
    if base.endswith(CALLBACK_SUFFIX):
        base, callback = base[: -len(CALLBACK_SUFFIX)], True
    elif base.endswith(SYNC_2_SUFFIX) and SERVICES.get(base[: -len(SYNC_2_SUFFIX)]) == START_EXECUTION:
        base, sync = base[: -len(SYNC_2_SUFFIX)], 2
    elif base.endswith(SYNC_SUFFIX):
        base = base[: -len(SYNC_SUFFIX)]
        sync = 1 if SERVICES.get(base) == START_EXECUTION else 0
    if base == LAMBDA_INVOKE:
        return Resource("invoke", "", resource, callback)
    if base in SERVICES:
        return Resource("service", SERVICES[base], resource, callback, sync)
    if base in SDK_SERVICES and base == resource.removesuffix(CALLBACK_SUFFIX):  # no .sync for SDK calls
        return Resource("service", SDK_SERVICES[base], resource, callback, sdk=True)
    if (activity := ACTIVITY_ARN.match(resource)) is not None:
        # A callback task whose dispatch is the runtime's delivery to the activity's pollers.
        return Resource("activity", activity.group(1), resource, callback=True)
    if base.startswith("arn:aws:lambda:"):
        parts = base.split(":")
        if len(parts) >= 7 and parts[5] == "function":
            return Resource("lambda", parts[6], base, callback)
    elif ":" not in base and base:
        return Resource("lambda", base, function_arn(base), callback)
    raise ValueError(
        f"unsupported resource {resource!r}: use a Lambda function ARN or name, {LAMBDA_INVOKE}, "
        "arn:aws:states:::sns:publish, arn:aws:states:::sqs:sendMessage (or their aws-sdk: forms),"
        " arn:aws:states:::states:startExecution (.sync, .sync:2) or an activity ARN"
    )


def function_arn(name: str) -> str:
    return f"arn:aws:lambda:us-east-1:000000000000:function:{name}"


def function_of(function_name: object) -> tuple[str, str]:
    """The registered name and the ARN of a lambda:invoke ``FunctionName`` (name, ARN or partial ARN)."""
    text = str(function_name)
    if text.startswith("arn:"):
        parts = text.split(":")
        return (parts[6] if len(parts) > 6 else text), text
    name = text.split(":")[0]
    return name, function_arn(name) if ":" not in text else text
