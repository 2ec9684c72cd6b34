"""The contract between the orchestrators and the workers: all they share besides the settings
(:mod:`orchestrator.settings`) and the dragon record's fields (:mod:`orchestrator.dragon_record`).

- :mod:`.tasks`      the task message a worker runs and the report it sends back (JSON), and the
                     Lambda error documents a report carries
- :mod:`.invocation` the one way a function is called, by a worker and by the local runner alike:
                     the ``(event, context)`` call, its context, exits and marshalling
- :mod:`.jobs`       the RQ job that carries tasks to a worker, built one way for both sides
- :mod:`.keys`       the Redis keys both sides touch (every key: orchestrator.runtime.keys)
- :mod:`.leases`     the lease record a worker holds while it runs a task
- :mod:`.scripts`    how a Lua script is loaded; ``lua/`` holds the scripts a worker runs
- :mod:`.reconnect`, :mod:`.decoding`, :mod:`.faults`
                     riding out a Redis outage, reading stored JSON and text, the clock-skew knob

It imports nothing of the orchestrator's runtime, of the ASL core, of the API or of the
workers (tests/test_import_contract.py), so either side can change its insides freely.
"""
