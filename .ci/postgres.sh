#!/usr/bin/env bash
# Starts (once) a throwaway PostgreSQL cluster for the PostgreSQL-backend
# tests and prints the environment that points them at it:
#   eval "$(.ci/postgres.sh)"
# The cluster runs as the postgres user (initdb refuses root) in
# $LLMFS_CI_PG_DIR (default /tmp/llmfs-ci-pg), on 127.0.0.1:$LLMFS_CI_PG_PORT
# (default 54329) and a Unix socket in that directory, without systemd.
# Role llmfs (password auth, scram) owns database llmfs_test; its
# password is in a 0600 password file (PGPASSFILE), never on a command line.
# The server also speaks TLS with a certificate of a throwaway CA, whose
# certificate LLMFS_TEST_PG_CA names. Running it again reuses the cluster.
set -euo pipefail
dir=${LLMFS_CI_PG_DIR:-/tmp/llmfs-ci-pg}
port=${LLMFS_CI_PG_PORT:-54329}
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
as_pg() { runuser -u postgres -- "$@"; }

mkdir -p "$dir"
chown postgres: "$dir"
if [ ! -f "$dir/data/PG_VERSION" ]; then
  as_pg "$bin/initdb" -D "$dir/data" -U postgres -A peer --auth-host=scram-sha-256 \
    >"$dir/initdb.log" 2>&1
fi
if ! as_pg "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
  as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=on" start >/dev/null
fi
# TLS with a certificate of a throwaway CA (for IP 127.0.0.1 and localhost),
# so that the tests can check sslmode=verify-full against sslrootcert.
if [ ! -s "$dir/ca.crt" ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=llmfs test CA" \
    -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$dir/san.ext"
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
    -CAcreateserial -days 3650 -extfile "$dir/san.ext" -out "$dir/server.crt" 2>/dev/null
  chown postgres: "$dir/server.key" "$dir/server.crt"
  chmod 0600 "$dir/server.key"
fi
as_pg psql -q -h "$dir" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 >/dev/null <<SQL
ALTER SYSTEM SET ssl_cert_file = '$dir/server.crt';
ALTER SYSTEM SET ssl_key_file = '$dir/server.key';
ALTER SYSTEM SET ssl = on;
SELECT pg_reload_conf();
SQL
pw_file="$dir/llmfs.password"
if [ ! -s "$pw_file" ]; then
  head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$pw_file"
  chmod 0600 "$pw_file"
fi
pw=$(cat "$pw_file")
# The password goes to psql on stdin, not its command line.
as_pg psql -q -h "$dir" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 >/dev/null <<SQL
SELECT 'CREATE ROLE llmfs LOGIN' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'llmfs')\gexec
ALTER ROLE llmfs PASSWORD '$pw';
SELECT 'CREATE DATABASE llmfs_test OWNER llmfs' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'llmfs_test')\gexec
SQL
pgpass="$dir/pgpass"
printf '127.0.0.1:%s:*:llmfs:%s\n' "$port" "$pw" >"$pgpass"
chmod 0600 "$pgpass"
echo "export LLMFS_TEST_PG='postgres://llmfs@127.0.0.1:$port/llmfs_test?sslmode=disable'"
echo "export PGPASSFILE='$pgpass'"
echo "export LLMFS_TEST_PG_CA='$dir/ca.crt'"
