"""Create the database named in DATABASE_URL if it does not exist yet.

Also keeps bound parameters out of the server log for that database: pgcrypto keys travel
as bound parameters, and with statement logging on (log_statement, log_min_duration_statement)
PostgreSQL would otherwise print them, and the decrypted values, after every statement.
"""

import os
import sys

import psycopg
from psycopg import errors, sql

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from config.env import load_dotenv, parse_database_url

QUIET_PARAMETERS = ("log_parameter_max_length", "log_parameter_max_length_on_error")

load_dotenv(__import__("pathlib").Path(__file__).resolve().parent.parent / ".env")
db = parse_database_url(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/inflow"))
params = {"host": db["HOST"], "port": db["PORT"] or 5432, "user": db["USER"], "password": db["PASSWORD"]}
with psycopg.connect(dbname="postgres", autocommit=True, **{k: v for k, v in params.items() if v}) as conn:
    exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db["NAME"]]).fetchone()
    if exists:
        print(f"database {db['NAME']}: exists")
    else:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db["NAME"])))
        print(f"database {db['NAME']}: created")
    try:
        for parameter in QUIET_PARAMETERS:
            conn.execute(
                sql.SQL("ALTER DATABASE {} SET {} = 0").format(sql.Identifier(db["NAME"]), sql.Identifier(parameter))
            )
    except errors.InsufficientPrivilege:
        print(f"database {db['NAME']}: ask a superuser to set {' and '.join(QUIET_PARAMETERS)} to 0 for it")
