"""Write an env file with fresh random keys, unless one exists already.

    python3 scripts/write_dotenv.py [.env]                 development settings (make run)
    python3 scripts/write_dotenv.py --docker docker/.env   Docker Compose settings

The pgcrypto key encrypts data at rest, so an existing file is never overwritten.
"""

import secrets
import sys
from pathlib import Path


def keys() -> list[str]:
    return [
        f"SECRET_KEY={secrets.token_urlsafe(50)}",
        f"PGCRYPTO_KEY={secrets.token_urlsafe(32)}",
        f"BLIND_INDEX_KEY={secrets.token_urlsafe(32)}",
        f"META_APP_SECRET={secrets.token_hex(16)}",
        f"META_VERIFY_TOKEN={secrets.token_urlsafe(16)}",
    ]


def development() -> list[str]:
    return [
        "# Development settings written by scripts/write_dotenv.py. Do not use in production.",
        "DEBUG=true",
        *keys(),
        "DATABASE_URL=postgres://postgres@127.0.0.1:5432/inflow",
        "REDIS_URL=redis://127.0.0.1:6379/0",
    ]


def docker() -> list[str]:
    # Hex: the password also goes into DATABASE_URL, where it then needs no escaping.
    postgres_password = secrets.token_hex(24)
    return [
        "# Docker Compose settings written by scripts/write_dotenv.py --docker (see README.md).",
        "# Git-ignored. Keep a copy of the keys: data encrypted with them is lost without them.",
        "DEBUG=false",
        "# Your domain(s); the first one also answers the container health check.",
        "ALLOWED_HOSTS=localhost",
        "# web is served behind a TLS-terminating proxy that sets X-Forwarded-Proto.",
        "SECURE_PROXY_SSL_HEADER=true",
        "SECURE_SSL_REDIRECT=true",
        "# Throttling reads the client's address from the proxy's X-Forwarded-For entry.",
        "NUM_PROXIES=1",
        *keys(),
        f"POSTGRES_PASSWORD={postgres_password}",
        f"DATABASE_URL=postgres://inflow:{postgres_password}@postgres:5432/inflow",
        "REDIS_URL=redis://redis:6379/0",
        "WEB_CONCURRENCY=2",
        "GUNICORN_THREADS=4",
        "WORKER_CONCURRENCY=2",
    ]


def main(argv: list[str]) -> int:
    for_docker = "--docker" in argv
    paths = [arg for arg in argv if arg != "--docker"]
    path = Path(paths[0] if paths else ("docker/.env" if for_docker else ".env"))
    if path.exists():
        print(f"{path}: kept (it holds the keys your data is encrypted with)")
        return 0
    path.write_text("\n".join(docker() if for_docker else development()) + "\n")
    path.chmod(0o600)
    print(f"{path}: written with new random keys")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
