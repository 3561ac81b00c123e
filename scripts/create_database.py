"""Create the database named in DATABASE_URL if it does not exist yet."""

import os
import sys

import psycopg
from psycopg import sql

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from config.env import load_dotenv, parse_database_url

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
