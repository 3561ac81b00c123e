# syntax=docker/dockerfile:1
# Inflow's image: gunicorn serves config.wsgi on port 8000. The same image runs the Celery
# worker and beat and the one-shot migrate step (see docker-compose.yml).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: dependencies into a virtualenv, static files collected -----------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
# Requirements first, so a code change reuses the cached dependency layer.
COPY requirements.txt /tmp/requirements.txt
RUN pip install -r /tmp/requirements.txt

WORKDIR /app
COPY . .
# collectstatic loads the settings with DEBUG off (the manifest storage), and those refuse
# to load without secrets. The placeholders below exist only for this RUN step of the
# build stage; none reaches the final image, its environment or its history. A secret that
# settings.py starts to require needs a placeholder here too.
RUN DEBUG=false \
    SECRET_KEY=build-only-not-a-secret-build-only-not-a-secret-build-only \
    PGCRYPTO_KEY=build-only-not-a-secret-pgcrypto-key \
    BLIND_INDEX_KEY=build-only-not-a-secret-blind-index-key \
    META_APP_SECRET=build-only-not-a-secret \
    META_VERIFY_TOKEN=build-only-not-a-secret \
    DATABASE_URL=postgres://build@127.0.0.1:1/build \
    REDIS_URL=redis://127.0.0.1:1/0 \
    python manage.py collectstatic --no-input --verbosity 0 \
 && python -m compileall -q -j 0 --invalidation-mode checked-hash /app

# --- runtime -------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    DJANGO_SETTINGS_MODULE=config.settings \
    PORT=8000 \
    BACKUP_DIR=/backups
# pg_dump and pg_restore for `manage.py backup` / `restore` (bookworm ships 15, the
# server version in docker-compose.yml).
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 inflow \
 && useradd --system --uid 10001 --gid inflow --create-home --home-dir /home/inflow \
        --shell /usr/sbin/nologin inflow \
 && install -d -o inflow -g inflow /backups
# Code and dependencies stay owned by root: the application cannot modify itself.
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
WORKDIR /app
USER 10001:10001

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["python", "/app/docker/healthcheck.py"]
CMD ["gunicorn", "--config", "/app/docker/gunicorn.conf.py", "config.wsgi"]
