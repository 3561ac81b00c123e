"""Gunicorn settings for the container image. Each value can be changed through the environment."""

import os
import re

from gunicorn.glogging import Logger

# Inside the container gunicorn must listen on every interface; docker-compose.yml publishes
# the port on the host's 127.0.0.1 only, for a TLS-terminating proxy in front.
bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"

# Threads give cheap concurrency while a request waits on PostgreSQL, Redis or the Graph
# API; processes spread the Python work over CPU cores.
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = 5

# Recycle each worker after a while, so a slow leak cannot grow without bound; the jitter
# keeps the workers from all restarting at once.
# Recycling a worker re-imports Django; at webhook rates 1000 meant a restart every ~2 s and
# twice the CPU per request (bench/webhooks.py). 50000 still bounds slow leaks.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "50000"))
max_requests_jitter = max_requests // 10

# Worker heartbeats go to memory rather than the container's overlay filesystem.
worker_tmp_dir = "/dev/shm"  # noqa: S108

# The access log does not pass through Django's redacting filter, so it leaves out query
# strings (the Meta verification handshake carries hub.verify_token there) and masks the
# secret in flow webhook URLs (/webhooks/flows/<id>/<secret>/, see config/urls.py).
_WEBHOOK_SECRET = re.compile(r"^(/webhooks/flows/[^/]+/)[^/]+")


class RedactingLogger(Logger):
    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        atoms["U"] = _WEBHOOK_SECRET.sub(r"\1[redacted]", atoms["U"])
        return atoms


logger_class = RedactingLogger
accesslog = "-"
access_log_format = '%(h)s %({x-forwarded-for}i)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms "%(a)s"'
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")

# gunicornc's control socket would go under $HOME; nothing in the image uses it.
control_socket_disable = True
