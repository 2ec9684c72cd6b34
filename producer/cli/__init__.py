"""``redstep``, the command line: one module per command group, assembled by :mod:`.root`.

``common`` holds what every command shares (the Redis it talks to, ``fail``, ``--json``);
``discovery``/``address`` find that Redis, ``stack`` runs ``redstep up``'s child processes,
``views``/``subscribe_view`` print. The library a Python user imports stays beside this
package: :mod:`producer.records` and :mod:`producer.produce`.
"""
