"""``python -m producer.cli``: the ``redstep`` command, as the tests and ``redstep up``'s children run it."""

from producer.cli.root import app

app()
