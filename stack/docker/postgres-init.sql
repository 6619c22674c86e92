-- Run once by the postgres:16 image on an empty volume (docker-entrypoint-initdb.d).
-- POSTGRES_DB creates the catalog database "polystore"; these are the two shards.
CREATE DATABASE polystore_s0;
CREATE DATABASE polystore_s1;
