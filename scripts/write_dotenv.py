"""Write an env file with fresh random keys, unless one exists already.

    python3 scripts/write_dotenv.py [.env]                 development settings (make run)
    python3 scripts/write_dotenv.py --docker docker/.env   Docker Compose settings

The pgcrypto key encrypts data at rest, so an existing file is never overwritten. For
Docker Compose it also writes docker/postgres.env beside it: the database container gets
its password from there, and none of Inflow's keys.
"""

import secrets
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit


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
        "# The same password is in postgres.env, the database container's only settings.",
        f"DATABASE_URL=postgres://inflow:{postgres_password}@postgres:5432/inflow",
        "REDIS_URL=redis://redis:6379/0",
        "WEB_CONCURRENCY=2",
        "GUNICORN_THREADS=4",
        "WORKER_CONCURRENCY=2",
    ]


def postgres_env(app_env: Path) -> list[str]:
    """The database container's settings: the password in the app's DATABASE_URL."""
    for line in app_env.read_text().splitlines():
        if line.startswith("DATABASE_URL="):
            password = urlsplit(line.partition("=")[2]).password
            if password:
                return [
                    "# The compose database's password, as in DATABASE_URL in .env (written by",
                    "# scripts/write_dotenv.py --docker). Git-ignored.",
                    f"POSTGRES_PASSWORD={unquote(password)}",
                ]
    raise SystemExit(f"{app_env}: no DATABASE_URL with a password, so no postgres.env can be written")


def write(path: Path, lines: list[str]) -> None:
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)


def main(argv: list[str]) -> int:
    for_docker = "--docker" in argv
    paths = [arg for arg in argv if arg != "--docker"]
    path = Path(paths[0] if paths else ("docker/.env" if for_docker else ".env"))
    if path.exists():
        print(f"{path}: kept (it holds the keys your data is encrypted with)")
    else:
        write(path, docker() if for_docker else development())
        print(f"{path}: written with new random keys")
    database_env = path.with_name("postgres.env")
    if for_docker and not database_env.exists():
        write(database_env, postgres_env(path))
        print(f"{database_env}: written with the database password of {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
