-- Runs once, when the compose Postgres volume is first initialised (docker-entrypoint-initdb.d),
-- as the superuser, in the inflow database. Migrations create the extensions they need as
-- well; having them in place already lets the migrations run under a role that may not
-- create extensions (pgvector's `vector` needs a superuser).
CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE EXTENSION IF NOT EXISTS vector;

-- pgcrypto keys travel as bound parameters. With statement logging on (log_statement,
-- log_min_duration_statement), PostgreSQL would print every statement's parameters, the
-- keys and decrypted values among them, into the server log; these keep them out.
DO $$
BEGIN
  EXECUTE format('ALTER DATABASE %I SET log_parameter_max_length = 0', current_database());
  EXECUTE format('ALTER DATABASE %I SET log_parameter_max_length_on_error = 0', current_database());
END
$$;
