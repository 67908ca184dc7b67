"""The SQL splitter that runs TimescaleDB migrations one statement at a time (some refuse transactions)."""
from __future__ import annotations

from storage.schema import migrations, split_statements


def test_split_honours_comments_quotes_and_dollar_bodies():
    sql = ("SELECT 1; -- a;b\nCREATE FUNCTION f() RETURNS int AS $fn$ SELECT 1; $fn$ LANGUAGE sql;\n"
           "SELECT ';' AS \"x;y\"; /* c; */ ;  \n")
    assert split_statements(sql) == [
        "SELECT 1",
        "-- a;b\nCREATE FUNCTION f() RETURNS int AS $fn$ SELECT 1; $fn$ LANGUAGE sql",
        "SELECT ';' AS \"x;y\""]


def test_every_timescale_statement_is_separate():
    for mig in migrations():
        if mig.timescale_only:
            parts = split_statements(mig.sql)
            assert len(parts) == mig.sql.count(";") - sum(p.count(";") for p in parts)
            assert all(p.rstrip().endswith(";") is False for p in parts)
