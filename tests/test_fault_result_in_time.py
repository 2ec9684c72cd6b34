"""An orchestrator killed holding a result that came in time: the result still wins over the timeout.

The function answers well within its task's TimeoutSeconds; the only orchestrator reads the
result and is SIGKILLed before committing it. The result stays pending with the dead one until
another claims it, REDSTEP_CLAIM_IDLE_SECONDS later, after the timeout has come due. The
survivor fires the timeout meanwhile; the execution must still succeed with the function's
output, as AWS judges a result by when it came (README, Limits).
"""

from __future__ import annotations

import signal
from pathlib import Path

import redis
from rq import Queue, Worker
from rq.serializers import JSONSerializer

from orchestrator.runtime.client import Client
from orchestrator.runtime.keys import GROUP, Keys
from orchestrator.settings import Settings
from tests.chaos import redstep_process, stop, wait_until

FUNCTIONS = Path(__file__).resolve().with_name("stack_functions.py")
TIMEOUT_SECONDS = 4
CLAIM_IDLE_SECONDS = 8  # longer than the timeout: the timeout fires before the result is claimed
MACHINE = {
    "StartAt": "Call",
    "States": {
        "Call": {
            "Type": "Task",
            "Resource": "sleep_and_report",
            "TimeoutSeconds": TIMEOUT_SECONDS,
            "End": True,
        }
    },
}


def test_a_result_read_by_a_killed_orchestrator_beats_the_timeout_that_fired_after_it(
    subprocess_env: dict[str, str], redis_client: redis.Redis, tmp_path: Path
) -> None:
    env = {**subprocess_env, "REDSTEP_CLAIM_IDLE_SECONDS": str(CLAIM_IDLE_SECONDS)}
    settings = Settings(redis_url=env["REDIS_URL"], prefix=env["REDSTEP_PREFIX"])
    keys, client = Keys(settings.prefix), Client(redis_client, settings)
    client.register_machine("Timed", MACHINE)
    queue = Queue(keys.task_queue_name, connection=redis_client, serializer=JSONSerializer)
    dying = {**env, "REDSTEP_FAULT_POINT": "after-read-events:1"}
    logs = tmp_path / "orchestrators.log"
    with (tmp_path / "worker.log").open("wb") as worker_log, logs.open("wb") as log:
        worker = redstep_process(env, "worker", "--functions", str(FUNCTIONS), log=worker_log)
        doomed = redstep_process(dying, "orchestrator", log=log)
        survivor = None
        try:
            wait_until(lambda: bool(Worker.all(queue=queue)), 60, "the worker to listen")
            wait_until(lambda: bool(client.orchestrators()), 60, "the orchestrator to beat")
            name = client.start_execution("Timed", {"seconds": 0.2})

            # Its first read of events is the result: it dies holding it, unacknowledged.
            assert doomed.wait(timeout=60) == -signal.SIGKILL, logs.read_text()
            assert redis_client.xpending(keys.events, GROUP)["pending"] == 1
            survivor = redstep_process(env, "orchestrator", log=log)

            described = client.wait(name, timeout=60)
            # The held timeout, judged again, is ignored as stale and leaves the stream.
            wait_until(lambda: redis_client.xlen(keys.events) == 0, 30, "the held timeout to be acknowledged")
        finally:
            for process in (worker, doomed, survivor):
                if process is not None:
                    stop(process)

    assert described["status"] == "SUCCEEDED", (described, logs.read_text())
    assert described["output"]["event"] == {"seconds": 0.2}
    types = [event["type"] for event in client.history(name)]
    assert "LambdaFunctionTimedOut" not in types and types[-1] == "ExecutionSucceeded"
    # It ended once the dead one's entry was claimed, after the timeout had come due.
    assert described["stopDate"] - described["startDate"] >= TIMEOUT_SECONDS
    assert redis_client.xpending(keys.events, GROUP)["pending"] == redis_client.zcard(keys.timers) == 0
