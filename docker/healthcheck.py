"""Container health check: GET /healthz from the local gunicorn; healthy on a 200.

/healthz answers 503 when PostgreSQL or Redis is down, so the container turns unhealthy
with them. Django serves only the hosts in ALLOWED_HOSTS, so the request names the first one.
"""

import os
import sys
import urllib.request


def allowed_host() -> str:
    for entry in os.environ.get("ALLOWED_HOSTS", "").split(","):
        host = entry.strip().lstrip(".")  # ".example.com" also allows example.com itself
        if host and "*" not in host:
            return host
    return "localhost"


def main() -> int:
    url = f"http://127.0.0.1:{os.environ.get('PORT', '8000')}/healthz"
    request = urllib.request.Request(url, headers={"Host": allowed_host()})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 (a fixed http://127.0.0.1 URL)
            return 0 if response.status == 200 else 1
    except Exception as exc:  # an HTTPError (503), a refused connection, a timeout
        print(f"healthcheck: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
