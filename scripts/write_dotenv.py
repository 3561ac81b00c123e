"""Write a development .env with fresh random keys, unless one exists already.

The pgcrypto key encrypts data at rest, so an existing .env is never overwritten.
"""

import secrets
import sys
from pathlib import Path

path = Path(sys.argv[1] if len(sys.argv) > 1 else ".env")
if path.exists():
    print(f"{path}: kept (it holds the keys your data is encrypted with)")
    sys.exit(0)
path.write_text(
    "# Development settings written by scripts/write_dotenv.py. Do not use in production.\n"
    "DEBUG=true\n"
    f"SECRET_KEY={secrets.token_urlsafe(50)}\n"
    f"PGCRYPTO_KEY={secrets.token_urlsafe(32)}\n"
    f"BLIND_INDEX_KEY={secrets.token_urlsafe(32)}\n"
    f"META_APP_SECRET={secrets.token_hex(16)}\n"
    f"META_VERIFY_TOKEN={secrets.token_urlsafe(16)}\n"
    "DATABASE_URL=postgres://postgres@127.0.0.1:5432/inflow\n"
    "REDIS_URL=redis://127.0.0.1:6379/0\n"
)
path.chmod(0o600)
print(f"{path}: written with new random keys")
