-- Runs once, when the compose Postgres volume is first initialised (docker-entrypoint-initdb.d),
-- as the superuser, in the inflow database. Migrations create the extensions they need as
-- well; having them in place already lets the migrations run under a role that may not
-- create extensions (pgvector's `vector` needs a superuser).
CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE EXTENSION IF NOT EXISTS vector;
