"""Durable async jobs and batch scoring.

- `queue`: the jobs table API (submit, claim with a lease, heartbeat, complete once, retry).
- `worker`: database-polling workers (inside `mloop serve`, or `mloop worker`).
- `local`, `celery`: backends (MLOOP_JOBS_BACKEND); `service`: the server's side of jobs.
- `batch`: `mloop batch-predict`, streamed in chunks; `ray`: the same on Ray Data.
"""
