"""One Platform per process: its database, services and audit writer are built once and handed
to the server app and the job worker."""

from __future__ import annotations

import httpx

from mloop.platform import Platform
from mloop.serving.server import ServerThread


def test_each_part_is_built_once(trained):
    platform = Platform(trained.settings)
    assert platform.database is platform.database
    assert platform.approvals is platform.approvals
    assert platform.deployments is platform.deployments
    assert platform.deployments.registry is platform.registry
    worker = platform.worker(concurrency=1)
    assert worker.queue is platform.jobs and worker.queue.database is platform.database
    platform.close()


def test_the_server_app_runs_on_the_platforms_services(trained):
    settings = trained.settings.model_copy(update={"audit_api_calls": True})
    platform = Platform(settings)
    app = platform.server_app("churn@production", log_predictions=False)
    with ServerThread(app) as server:
        state = app.mloop
        assert state.approvals is platform.approvals
        assert state.deployments is platform.deployments
        assert state.audit is platform.audit_writer
        assert state.jobs.queue is platform.jobs
        assert httpx.get(f"{server.url}/approvals").status_code == 200
        assert httpx.get(f"{server.url}/deployments").status_code == 200
    writer = platform.audit_writer
    writer.flush()  # still open after the app stopped: the platform owns it
    assert any(r["target"] == "GET /approvals" for r in platform.audit.rows())
    platform.close()
    assert "audit_writer" not in vars(platform)
