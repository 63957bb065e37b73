"""A local models registry: ``pack registry serve``, the flow of docs/publish.md on a folder of your own.

``state``: models, packages and upload tokens, kept in ``ROOT/registry.json`` (written atomically after
every change) and the package files under ``ROOT/files/``, so a registry survives a restart.
``server``: the HTTP service on it, as strict as the real service and client: the model-registration,
package-registration (signed upload URLs that point back at this server), upload, confirm-and-seal and
weights endpoints (alphanumeric package ids, typed answers, pages read with ``startAfter``, unknown query
parameters refused, every route but the downloads behind ``Authorization: Bearer <secret>``), and the
downloads themselves.
``cli``: the ``pack registry`` verb.

``pack --register``, ``pack verify-remote`` and the consumer's own weights provider
(``ROBOFLOW_API_HOST`` / ``ROBOFLOW_API_KEY``) all read it; the test suite's loopback registry
(tests/servers/registry.py) is this server with failure injection on top.
"""
