"""Publishing Celery tasks when the database row, not the message, is the durable record.

Nothing durable lives in Redis: an execution or a document is a row first, and a sweeper
re-sends the message for rows that wait too long. So a broker that is down (restarting,
flushed, unreachable) must not turn a request that already committed its row into a 500 —
a client would retry it and start the work twice. `publish` logs and carries on instead.
"""

from __future__ import annotations

import logging

import redis
from celery import Task
from kombu.exceptions import OperationalError

logger = logging.getLogger(__name__)

BROKER_ERRORS = (OperationalError, redis.RedisError, ConnectionError, TimeoutError)


def publish(task: Task, args: tuple = (), *, countdown: float | None = None, backstop: str) -> bool:
    """Send `task`; False when the broker is unreachable. `backstop` says what re-sends it."""
    try:
        task.apply_async(args, countdown=countdown)
    except BROKER_ERRORS as exc:
        logger.warning("%s%s not queued (broker unreachable: %s); %s", task.name, args, type(exc).__name__, backstop)
        return False
    return True
