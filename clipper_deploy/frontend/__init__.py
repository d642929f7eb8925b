"""The Clipper-compatible frontend: query API, management API, replica port, batching, state.

Modules, one concern each:

- :mod:`~clipper_deploy.frontend.protocol`: the replica protocol (frames, batch encoding).
- :mod:`~clipper_deploy.frontend.validation`: checking a query body against an input type.
- :mod:`~clipper_deploy.frontend.batching`: the AIMD batch-size controller.
- :mod:`~clipper_deploy.frontend.store`: apps, models, links, versions in SQLite.
- :mod:`~clipper_deploy.frontend.router`: per-model queues, dispatch to replicas, SLO defaults.
- :mod:`~clipper_deploy.frontend.replica_server`: the replica port.
- :mod:`~clipper_deploy.frontend.query_api` / :mod:`~clipper_deploy.frontend.admin_api`: HTTP.
- :mod:`~clipper_deploy.frontend.http`: what both HTTP ports share: JSON errors (also for
  requests aiohttp's parser refuses), body limits and timeouts, the listening server.
- :mod:`~clipper_deploy.frontend.openapi`: the OpenAPI 3 document served at ``/openapi.json``.
- :mod:`~clipper_deploy.frontend.logs`: the rotated ``frontend.log``.
- :mod:`~clipper_deploy.frontend.metrics`: Prometheus metrics.
- :mod:`~clipper_deploy.frontend.tokens`: bearer tokens on the frontend host and the client.
- :mod:`~clipper_deploy.frontend.server`: wiring; ``python -m clipper_deploy.frontend`` runs it.
- :mod:`~clipper_deploy.frontend.process`: start/stop/status as a background process.
- :mod:`~clipper_deploy.frontend.client`: :class:`AdminClient` and :class:`QueryClient`.
"""
