-- Run once by the postgres image on an empty volume: MLflow and mloop each get their own
-- database (both use Alembic, whose version table must not be shared).
CREATE DATABASE mloop;
