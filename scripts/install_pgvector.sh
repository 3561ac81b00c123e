#!/usr/bin/env bash
# Build and install the pgvector extension for the local PostgreSQL server.
#
# Debian 12 does not package pgvector, so we build it from Debian trixie's source
# package using a private apt configuration (the system's sources are untouched).
# Idempotent: does nothing when the server already offers the extension.
set -euo pipefail

PG_MAJOR="${PG_MAJOR:-$(ls /etc/postgresql 2>/dev/null | sort -n | tail -n 1)}"
if [ -z "$PG_MAJOR" ]; then
  echo "install_pgvector: no local PostgreSQL cluster found" >&2
  exit 1
fi
if [ -f "/usr/share/postgresql/$PG_MAJOR/extension/vector.control" ]; then
  echo "pgvector: already installed for PostgreSQL $PG_MAJOR"
  exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

echo "pgvector: building for PostgreSQL $PG_MAJOR from Debian trixie sources"
workdir="$(mktemp -d)"
trap 'rm -rf "$workdir"' EXIT

# A private apt root that only knows trixie's source index.
aptroot="$workdir/apt"
mkdir -p "$aptroot/lists/partial" "$aptroot/cache/archives/partial" "$aptroot/sources.list.d"
cat > "$aptroot/sources.list" <<SOURCES
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main
SOURCES
aptopts=(-o "Dir::Etc::SourceList=$aptroot/sources.list"
         -o "Dir::Etc::SourceParts=$aptroot/sources.list.d"
         -o "Dir::State::Lists=$aptroot/lists"
         -o "Dir::Cache=$aptroot/cache"
         -o "APT::Sandbox::User=root")

$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
  "postgresql-server-dev-$PG_MAJOR" build-essential dpkg-dev >/dev/null
$SUDO apt-get "${aptopts[@]}" update -qq
(cd "$workdir" && apt-get "${aptopts[@]}" source --download-only -qq pgvector)
(cd "$workdir" && dpkg-source -x --no-check ./pgvector_*.dsc src >/dev/null)
make -s -C "$workdir/src" PG_CONFIG="/usr/lib/postgresql/$PG_MAJOR/bin/pg_config" >/dev/null
$SUDO make -s -C "$workdir/src" PG_CONFIG="/usr/lib/postgresql/$PG_MAJOR/bin/pg_config" install >/dev/null
echo "pgvector: installed $(grep default_version "/usr/share/postgresql/$PG_MAJOR/extension/vector.control")"
