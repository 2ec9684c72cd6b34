"""Prometheus metrics for redstep, served at ``/metrics`` by ``redstep serve``.

Counts that need an event (executions started and finished, state transitions, task
durations and failures, API requests) are kept in one Redis hash (protocol.metrics) that
every process adds to inside a script call or pipeline it makes anyway: the orchestrators in
their commit (counting), the workers with their reports (worker.entry), ``serve`` every
second (requests). Everything else (queue depths, workers, dead letters) is read at scrape
time from what Redis holds already (scrape).
"""
