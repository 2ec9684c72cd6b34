"""Every Redis key redstep uses, in one place.

Layout (``{p}`` is the configured prefix; ``{name}`` in braces is a Redis Cluster hash tag,
so all keys of one execution hash to one slot). The keys a worker touches too are marked
(shared): :class:`orchestrator.protocol.keys.SharedKeys` builds them, and this module's
:class:`Keys` adds the orchestrators' own.

Executions
    ``{p}:exec:{<name>}``        (shared) hash: ``execution`` (the JSON blob the ASL core reads and writes)
                                 and ``version`` (an integer bumped on every committed transition;
                                 optimistic concurrency between orchestrators)
    ``{p}:history:{<name>}``     list of JSON history events, in AWS GetExecutionHistory shape; once the
                                 execution has finished a while, one string instead: the same events
                                 compacted (runtime.histories, runtime.history_compaction)
    ``{p}:executions``           zset: execution name scored by start time (the index)
    ``{p}:status:<STATUS>``      zset per status (RUNNING, SUCCEEDED, ...): name scored by start time
    ``{p}:closed``               zset: each finished execution scored by its stop time; written by the
                                 commit that finishes it (left by a redrive's), read by the retention
                                 sweep, which removes all of the execution's keys and index entries
    ``{p}:machines``             hash: state machine name -> definition JSON (its current version)
    ``{p}:machine-versions``     hash: ``<name>@<version>`` -> definition JSON, every version ever
                                 registered (an execution runs on the version it started with)
    ``{p}:machine-retention``    hash: state machine name -> seconds its finished executions are kept
                                 (0: forever), set by ``redstep machines retention``; a machine with
                                 none keeps them ``retention_seconds`` (runtime.retention)
    ``{p}:machine-details``      hash: state machine name -> JSON of what the Step Functions API adds
                                 (roleArn, type, creationDate, updateDate, executionsSince), or of
                                 ``{"deleted": <time>}`` once DeleteStateMachine removed it (runtime.catalog)
    ``{p}:machine-executions:<machine>`` and ``{p}:machine-status:<machine>:<STATUS>``
                                 zsets: each machine's own execution index, by start time, kept with
                                 the global one; ``{p}:machine-index-built`` says older executions
                                 were taken in, ``{p}:machine-index-building`` locks that rebuild
                                 (runtime.execution_index)
    ``{p}:sfn-versions:<machine>``, ``{p}:sfn-aliases:<machine>``
                                 hashes: a machine's published versions and its aliases, with the
                                 creation date of the machine they belong to (api.stepfunctions)
    ``{p}:sfn-execution-origins`` hash: execution name -> JSON of the version (and alias) it was
                                 started through
    ``{p}:sfn-tags``             hash: state machine ARN -> JSON ``{"created": <its creationDate>, "tags"}``
                                 (TagResource); removed with the machine, and a machine created again
                                 under the name does not inherit them (the creation date differs)

The orchestrators
    ``{p}:events``               (shared) stream of events for executions; one field ``event`` holding
                                 JSON (TaskSucceeded, TaskFailed, TaskHeartbeat, TimerFired, StopExecution,
                                 ActivityStarted)
    ``{p}:timers``               zset: a TimerFired event (JSON) scored by its due time. Executions
                                 stored before leases had their own key may still hold a lease here:
                                 a TaskFailed (Lambda.Unknown) event, which fires as a timer does
    ``{p}:malformed``            (shared) stream of entries moved aside: ``stream``, ``id``, ``reason``,
                                 ``fields``
    ``{p}:heartbeat:<consumer>`` string with a TTL, set by each orchestrator every loop
    ``{p}:orchestrators``        set of the consumers that sent a heartbeat: added to in the pipeline
                                 that sets the heartbeat, pruned by the orchestrators of names whose
                                 heartbeat expired (readers skip those), so nothing needs SCAN

Source queues (SQS role) and topics (SNS role)
    ``{p}:queue:<name>``         stream of messages: ``body`` holding JSON and ``message_id``, the name of
                                 the execution it starts (the entry id stands in when it is missing)
    ``{p}:dlq:<name>``           dead letters: ``body``, ``message_id``, ``reason``, ``receive_count``
    ``{p}:queues``               set of the names of queues messages were sent to or CreateQueue made,
                                 so listing them needs no SCAN; DeleteQueue removes a name
    ``{p}:queue-attributes``     hash: queue name -> JSON of the attributes CreateQueue gave it (SQS API)
    ``{p}:dlq-queues``           set of the queue names that ever had a dead letter, added to in the
                                 transaction that moves one; purging a queue's letters removes it
    ``{p}:topic:<name>``         pub/sub channel of SNS-shaped envelopes (JSON)
    ``{p}:topic-log:<name>``     stream capped near ``notification_stream_length``; field ``message``;
                                 the group ``sns-delivery`` (made by the first Subscribe) hands each
                                 entry to one ``serve`` process, which delivers it to the subscriptions
    ``{p}:sns-topics``           hash: topic name -> JSON of its attributes and tags (SNS API CreateTopic)
    ``{p}:sns-subscriptions``    hash: subscription id -> JSON (topic, protocol, endpoint, attributes)

Activities (Step Functions' pull model for workers; runtime.activities)
    ``{p}:activities``           hash: activity name -> JSON ``{"creationDate"}`` (CreateActivity)
    ``{p}:activity:<name>``      stream of the activity's scheduled tasks: field ``task`` holding JSON
                                 ``{"execution", "token", "sealed", "input"}``, appended by the commit
                                 that enters the Task state; GetActivityTask reads it through the
                                 ``pollers`` group
    ``{p}:task-token-key``       string: the key that seals the task tokens handed out (runtime.callbacks)
    ``{p}:ended:{<name>}``       stream of one entry, ``status``, added by the commit that ends an
                                 execution started by StartSyncExecution or TestState; its waiter
                                 deletes it, and it expires (TTL: transitions.ENDED_KEEP_SECONDS)
                                 when nobody waits any more

Workers (Lambda role), all shared
    ``<p>-tasks``                the RQ queue name; RQ keeps it in ``rq:queue:<p>-tasks``, jobs in
                                 ``rq:job:<id>`` and the set of queues in ``rq:queues``
    ``{p}:dragons``              hash: dragon name -> record JSON (the dragon functions' store)
    ``{p}:workers``              set of live worker names; ``{p}:worker:<name>`` (TTL: the lease) says
                                 one is alive; ``{p}:claimed:<name>`` lists the RQ jobs it dequeued
                                 and has not started (worker.leases)
    ``{p}:leases``               zset: a lease record (JSON: execution, token, worker, lease_seconds,
                                 request_id; protocol.leases) per task a worker runs, scored by when
                                 it runs out by Redis's ``TIME``. Set and renewed by the worker's
                                 scripts, removed with its report; an expired one is fired by the
                                 orchestrators (lua/fire_timers.lua) as the TaskFailed
                                 (Lambda.Unknown) event it stands for.

Metrics
    ``{p}:metrics``              (shared) hash of counters every process adds to with HINCRBY: field
                                 ``[<metric>, <label values>...]`` (JSON) -> integer (protocol.metrics)

Every stream with consumers has one consumer group, ``orchestrators``.
"""

from __future__ import annotations

from orchestrator.protocol.keys import SharedKeys

GROUP = "orchestrators"
BODY_FIELD = "body"
ACTIVITY_TASK_FIELD = "task"
FINISHED_STATUSES = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
STATUSES = ("RUNNING", *FINISHED_STATUSES)


class Keys(SharedKeys):
    """The keys of one redstep installation, all under ``prefix``: the shared ones and the orchestrators'."""

    def history(self, name: str) -> str:
        return f"{self.prefix}:history:{{{name}}}"

    @property
    def executions(self) -> str:
        return f"{self.prefix}:executions"

    def status(self, status: str) -> str:
        return f"{self.prefix}:status:{status}"

    @property
    def closed(self) -> str:
        return f"{self.prefix}:closed"

    @property
    def machines(self) -> str:
        return f"{self.prefix}:machines"

    @property
    def machine_versions(self) -> str:
        return f"{self.prefix}:machine-versions"

    @property
    def machine_retention(self) -> str:
        return f"{self.prefix}:machine-retention"

    @property
    def machine_details(self) -> str:
        return f"{self.prefix}:machine-details"

    @property
    def timers(self) -> str:
        return f"{self.prefix}:timers"

    def heartbeat(self, consumer: str) -> str:
        return f"{self.prefix}:heartbeat:{consumer}"

    @property
    def orchestrators(self) -> str:
        return f"{self.prefix}:orchestrators"

    def queue(self, name: str) -> str:
        return f"{self.prefix}:queue:{name}"

    def dead_letters(self, name: str) -> str:
        return f"{self.prefix}:dlq:{name}"

    @property
    def queue_names(self) -> str:
        return f"{self.prefix}:queues"

    @property
    def queue_attributes(self) -> str:
        return f"{self.prefix}:queue-attributes"

    @property
    def dead_letter_queues(self) -> str:
        return f"{self.prefix}:dlq-queues"

    def topic(self, name: str) -> str:
        return f"{self.prefix}:topic:{name}"

    def topic_log(self, name: str) -> str:
        return f"{self.prefix}:topic-log:{name}"

    @property
    def sfn_tags(self) -> str:
        return f"{self.prefix}:sfn-tags"

    @property
    def sns_topics(self) -> str:
        return f"{self.prefix}:sns-topics"

    @property
    def sns_subscriptions(self) -> str:
        return f"{self.prefix}:sns-subscriptions"

    @property
    def activities(self) -> str:
        return f"{self.prefix}:activities"

    def activity_tasks(self, name: str) -> str:
        return f"{self.prefix}:activity:{name}"

    @property
    def task_token_key(self) -> str:
        return f"{self.prefix}:task-token-key"

    def execution_ended(self, name: str) -> str:
        return f"{self.prefix}:ended:{{{name}}}"
