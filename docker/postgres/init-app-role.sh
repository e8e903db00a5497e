#!/bin/bash
# Run once by the postgres image on an empty data volume (/docker-entrypoint-initdb.d/): the
# application's role and database. The role owns its database, so migrations can create and alter
# tables, but it is no superuser: it cannot read other databases, create roles, or switch off
# foreign-key checks (session_replication_role). The superuser stays the operator's.
# DISTILLERY_DB_NAME and DISTILLERY_DB_USER default to `distillery`.
set -euo pipefail

: "${DISTILLERY_DB_PASSWORD:?set DISTILLERY_DB_PASSWORD}"
name="${DISTILLERY_DB_NAME:-distillery}"
role="${DISTILLERY_DB_USER:-distillery}"

# psql quotes the variables (:"identifier", :'literal'), so no value can break out of the SQL.
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname postgres \
	-v role="$role" -v name="$name" -v password="$DISTILLERY_DB_PASSWORD" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'password'
    NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
CREATE DATABASE :"name" OWNER :"role";
REVOKE ALL ON DATABASE :"name" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"name" TO :"role";
SQL
