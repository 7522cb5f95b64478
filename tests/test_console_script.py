"""The `importdash` console command as a user runs it: a real process, its output a pipe (not a terminal), beside
a real server."""

import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from servers import PROJECT_ROOT, Servers, server_env

pytestmark = pytest.mark.unit

IMPORTDASH = Path(sys.executable).parent / "importdash"
FLASK = Path(sys.executable).parent / "flask"


def run(command, env, *args, timeout=60):
    return subprocess.run(
        [str(command), *args], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout
    )


def command_names(help_text):
    return re.findall(r"^  ([a-z-]+)  ", help_text.partition("Commands:")[2], flags=re.MULTILINE)


def test_the_console_command_runs_the_flask_commands_and_imports_the_sample(tmp_path):
    env = server_env(tmp_path, f"sqlite:///{tmp_path / 'cli.db'}", RATE_PER_SECOND=0)

    ours, flasks = run(IMPORTDASH, env, "--help"), run(FLASK, env, "--app", "importdash", "--help")
    assert ours.returncode == 0 and flasks.returncode == 0, ours.stderr + flasks.stderr
    assert command_names(ours.stdout) == command_names(flasks.stdout)
    assert {"run", "db", "routes", "import", "list", "status", "watch", "cancel", "retry", "errors"} <= set(
        command_names(ours.stdout)
    )

    imported = run(IMPORTDASH, env, "import", "--mode", "default")
    assert imported.returncode == 0, imported.stderr
    assert "Import #1 completed: 1,000 of 1,000 rows processed" in imported.stdout
    assert "\r" not in imported.stderr and "100.0% 1,000/1,000" in imported.stderr
    listed = run(IMPORTDASH, env, "list")
    assert listed.stdout.splitlines()[1].split()[:3] == ["1", "completed", "default"]


def test_watch_follows_an_import_a_server_runs_until_it_ends(tmp_path):
    servers = Servers(tmp_path, f"sqlite:///{tmp_path / 'watch.db'}")
    # About 55 calls at 8 a second: the import runs for about 7 s while it is watched.
    server = servers.start("server", THREADS=4, RATE_PER_SECOND=8, RATE_BURST=1)
    try:
        job_id = httpx.post(f"{server.url}/api/import", timeout=10).json()["job"]["id"]

        watched = run(IMPORTDASH, server.env | {"IMPORTDASH_PROGRESS_LINE_SECONDS": "1"}, "watch", str(job_id))

        assert watched.returncode == 0, watched.stderr
        assert f"Import #{job_id} completed: 1,000 of 1,000 rows processed" in watched.stdout
        assert "\r" not in watched.stderr
        progress = [line for line in watched.stderr.splitlines() if "ok " in line]
        done = [int(re.search(r"(\d[\d,]*)/1,000", line)[1].replace(",", "")) for line in progress]
        assert len(progress) >= 3 and done == sorted(done)  # a line a second while it ran, never going back
        assert any(0 < rows < 1000 for rows in done), progress
        assert progress[-1].startswith("completed")
    finally:
        servers.stop()
