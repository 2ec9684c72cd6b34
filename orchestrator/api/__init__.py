"""The HTTP face of redstep (``redstep serve``): AWS's own APIs over the runtime's client API.

- ``app``: the Starlette app; ``POST /`` routed by ``X-Amz-Target`` (AWS JSON protocol), ``/healthz``.
- ``sigv4``: Signature Version 4 checked on every request.
- ``shapes``: request validation and response shaping from botocore's service models (``models/``).
- ``stepfunctions``: one module per group of Step Functions actions.
- ``sqs``: the SQS actions over the source queues (``orchestrator.runtime.queues`` and ``.receiving``).
- ``arns``, ``pagination``, ``errors``, ``config``: what every service shares.

Nothing in ``orchestrator/asl``, ``orchestrator/runtime``, ``worker`` or ``producer`` (but its
``serve`` command) imports this package.
"""
