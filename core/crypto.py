"""Keys for pgcrypto column encryption and the keyed blind index.

Encrypted values are stored as one key-version byte followed by an OpenPGP message made by
`pgp_sym_encrypt(value, key, 'cipher-algo=aes256, s2k-mode=1')`. The version byte lets
reads pick the right key while `rotate_pgcrypto_key` re-encrypts rows one batch at a time.

s2k-mode=1 (salted, not iterated) is deliberate: the key is random and long, so key
stretching buys nothing, and it makes decryption ~47x cheaper than the default mode 3.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from functools import cache

from django.conf import settings

PGP_OPTIONS = "cipher-algo=aes256, s2k-mode=1"


@dataclass(frozen=True)
class Keyring:
    current_version: int
    keys: dict[int, str]

    @property
    def current_key(self) -> str:
        return self.keys[self.current_version]

    def version_prefix(self) -> bytes:
        return bytes([self.current_version])


@cache
def keyring() -> Keyring:
    version = settings.PGCRYPTO_KEY_VERSION
    if not 1 <= version <= 255:
        raise ValueError("PGCRYPTO_KEY_VERSION must be between 1 and 255")
    keys = dict(settings.PGCRYPTO_OLD_KEYS)
    keys[version] = settings.PGCRYPTO_KEY
    return Keyring(current_version=version, keys=keys)


def encrypt_sql(placeholder: str = "%s") -> tuple[str, list]:
    """SQL that encrypts `placeholder` with the current key, and its extra parameters.

    Returns (sql, params) where params are [version_prefix, <value goes here>, key, options]
    minus the value: callers splice the value's own params in at `placeholder`.
    """
    ring = keyring()
    sql = f"(%s::bytea || pgp_sym_encrypt(({placeholder})::text, %s::text, %s::text))"
    return sql, [ring.version_prefix(), ring.current_key, PGP_OPTIONS]


def decrypt_sql(column_sql: str, column_params: list | tuple = ()) -> tuple[str, list]:
    """SQL that decrypts `column_sql` with whichever key its version byte names.

    An unknown version raises "no pgcrypto key is configured for key version N" (a SQL
    function from core's first migration) instead of silently reading as NULL.
    """
    ring = keyring()
    whens = " ".join("WHEN %s THEN %s::text" for _ in ring.keys)
    key_params: list = []
    for version, key in sorted(ring.keys.items()):
        key_params += [version, key]
    sql = (
        f"pgp_sym_decrypt(substring({column_sql} from 2), "
        f"CASE get_byte({column_sql}, 0) {whens} "
        f"ELSE CASE WHEN {column_sql} IS NULL THEN NULL "
        f"ELSE inflow_missing_pgcrypto_key(get_byte({column_sql}, 0)) END END)"
    )
    return sql, [*column_params, *column_params, *key_params, *column_params, *column_params]


def normalize_email(email: str) -> str:
    return email.strip().lower()


def keyed_hash(value: str) -> str:
    """HMAC-SHA256 under BLIND_INDEX_KEY: a stable pseudonym that reveals nothing."""
    return hmac.new(settings.BLIND_INDEX_KEY.encode(), value.encode(), hashlib.sha256).hexdigest()


def blind_index(value: str) -> str:
    """Keyed hash of a normalized email: lookups without storing the address."""
    return keyed_hash(normalize_email(value))
