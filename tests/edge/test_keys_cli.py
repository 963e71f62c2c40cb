"""`qc keys` as an admin runs it: create prints the token once, list never shows it, revoke works."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def qc(*args):
    return subprocess.run([sys.executable, "-m", "qc", *args], cwd=REPO, capture_output=True, text=True)


def test_keys_create_list_revoke(tmp_path):
    url = f"sqlite:///{tmp_path / 'qc.db'}"
    created = qc("keys", "create", "alice", "--role", "operator", "--database-url", url)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip().splitlines()[-1]
    assert len(token) > 20
    listed = qc("keys", "list", "--database-url", url)
    assert "alice\toperator" in listed.stdout and token not in listed.stdout
    assert token not in (tmp_path / "qc.db").read_bytes().decode("latin-1")  # stored hashed
    assert qc("keys", "revoke", "alice", "--database-url", url).returncode == 0
    assert "revoked" in qc("keys", "list", "--database-url", url).stdout
    assert qc("keys", "revoke", "bob", "--database-url", url).returncode == 2


def test_keys_go_to_the_database_of_the_station_config(tmp_path):
    from edge.storage.engine import open_engine
    from edge.storage.keys import KeyStore

    config_dir = tmp_path / "etc" / "qc"
    config_dir.mkdir(parents=True)
    (config_dir / "station.yaml").write_text("storage: {data_dir: data}\n")
    station = str(config_dir / "station.yaml")
    created = qc("keys", "create", "alice", "--role", "operator", "--config", station)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip().splitlines()[-1]
    engine = open_engine(f"sqlite:///{config_dir / 'data' / 'qc.db'}")  # where that station looks
    try:
        assert KeyStore(engine).verify(token).name == "alice"
    finally:
        engine.dispose()
    both = qc("keys", "list", "--config", station, "--database-url", "sqlite://")
    assert both.returncode == 2 and "not allowed with argument" in both.stderr
    bad = qc("keys", "list", "--config", str(tmp_path / "nope.yaml"))
    assert bad.returncode == 2 and "cannot read config" in bad.stderr
