import os

from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("inflow")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Celery's Django fixup closes the database connection around every task unless this is
# set, so each task paid for a new PostgreSQL connection (tens of ms, 5x the work of a
# whole flow run). Connections are managed as Django does for requests instead: below.
app.conf["CELERY_DB_REUSE_MAX"] = 1_000_000_000
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def close_old_connections(**kwargs) -> None:
    """Like a request boundary: drop connections that are broken or older than CONN_MAX_AGE.

    With CONN_HEALTH_CHECKS on, the next query first checks the connection, so a database
    restart costs one failed check, not a failed task.
    """
    from django.db import close_old_connections as close

    close()


@worker_process_init.connect
def skip_per_task_health_checks(**kwargs) -> None:
    """Workers run many short tasks; a SELECT 1 before each one is a fifth of a flow run.

    Instead runner.claim() retries once on a dead connection, the only point where a stale
    connection can fail a task before any work has started.
    """
    from django.db import connections

    for alias in connections:
        connections[alias].settings_dict["CONN_HEALTH_CHECKS"] = False
