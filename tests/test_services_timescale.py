"""Local services preload TimescaleDB when it is installed (issue 12, TimescaleDB finding 5): `skylane services
up` wrote a fixed postgresql.conf, so nobody got the production storage path locally."""
from __future__ import annotations

from skylane import localservices


def _server(tmp_path, with_timescale: bool) -> str:
    (tmp_path / "bin").mkdir(parents=True)
    (tmp_path / "lib").mkdir()
    binary = tmp_path / "bin" / "postgres"
    binary.write_text("")
    if with_timescale:
        (tmp_path / "lib" / "timescaledb.so").write_text("")
    return str(binary)


def test_the_library_beside_the_server_is_detected(tmp_path):
    assert localservices.timescale_installed(_server(tmp_path / "a", True))
    assert not localservices.timescale_installed(_server(tmp_path / "b", False))


def test_the_preload_line_is_added_once_and_never_over_an_operators_choice(tmp_path):
    conf = tmp_path / "postgresql.conf"
    conf.write_text("#shared_preload_libraries = ''\t# (change requires restart)\nport = 5\n")
    assert not localservices.preload_timescale(conf, installed=False)
    assert "timescaledb" not in conf.read_text()
    assert localservices.preload_timescale(conf, installed=True)
    assert not localservices.preload_timescale(conf, installed=True)
    lines = conf.read_text().splitlines()
    assert lines.count(localservices.TIMESCALE_PRELOAD.strip()) == 1 and lines[1] == "port = 5"
    own = tmp_path / "own.conf"
    own.write_text("shared_preload_libraries = 'pg_stat_statements'\n")
    assert not localservices.preload_timescale(own, installed=True)
    assert own.read_text() == "shared_preload_libraries = 'pg_stat_statements'\n"
