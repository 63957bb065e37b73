"""Publish verified packages: upload zips to object storage, register them with the models service, and
check a registered package end to end (``pack verify-remote``).

Modules: :mod:`.secret` (the service secret, never shown), :mod:`.http` (retries with backoff),
:mod:`.storage` (``gs://`` and ``file://`` stores), :mod:`.plan` (the gate and the printed plan),
:mod:`.registry` (the models-service client), :mod:`.register` (the resumable registration flow and its
state file), :mod:`.cli` (the ``pack`` flags), :mod:`.verify_remote` with :mod:`.download` (a registered
package read back as hostile data) and :mod:`.consumer_check` (each package through the real consumer).
See docs/publish.md.
"""
