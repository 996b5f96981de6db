"""What ``serve`` holds on its default settings (SQLite, filesystem, no auth): not the modules
that only other settings, a migration or a catalog page need (issue #18's idle RSS row), and
a schema that is behind (fresh, or an older revision) is still brought to the heads."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers import free_port

# Each of these is needed only by some configuration or by start-up, never by a default server
# once its schema is current.
NOT_HELD = (
    "alembic", "mako",                                   # migrations: a child process runs them
    "sqlalchemy.orm", "sqlalchemy.ext.asyncio",          # models are Core tables; no async engine on SQLite
    "aiosqlite",                                         # the async driver (its dialect module is cheap)
    "asyncpg", "sqlalchemy.dialects.postgresql",         # PostgreSQL only
    "jinja2",                                            # the catalog's first page
    "jwt", "cryptography", "bcrypt",                     # auth modes
    "aiobotocore", "botocore",                           # the S3 driver
)

# The real ``serve`` path; once the port answers (and a request went through), the server
# prints what it imported and the schema revision, then exits.
SERVER = textwrap.dedent("""
    import json, os, sys, threading, time, urllib.request
    port, data = int(sys.argv[1]), sys.argv[2]

    def report():
        for _ in range(900):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=5).read()
                break
            except OSError:
                time.sleep(0.1)
        time.sleep(0.5)  # start-up work that runs after the port opened
        print(json.dumps(sorted(sys.modules)), flush=True)
        os._exit(0)

    threading.Thread(target=report, daemon=True).start()
    from registry.__main__ import main
    sys.exit(main(["serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data]))
""")


def _serve_and_list_modules(data: Path) -> set[str]:
    out = subprocess.run([sys.executable, "-c", SERVER, str(free_port()), str(data)],
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout.splitlines()[-1]))


def _revisions(data: Path) -> set[str]:
    import sqlite3

    with sqlite3.connect(data / "index.db") as conn:
        return {row[0] for row in conn.execute("SELECT version_num FROM alembic_version")}


def _heads() -> set[str]:
    from registry.index.migrate import script_heads

    heads = script_heads()
    assert heads
    return heads


def _held(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m in NOT_HELD or m.split(".")[0] in NOT_HELD)


@pytest.mark.slow
def test_default_server_holds_no_optional_modules(tmp_path):
    data = tmp_path / "data"
    first = _serve_and_list_modules(data)   # fresh data dir: a child process migrates
    assert _revisions(data) == _heads()
    again = _serve_and_list_modules(data)   # schema current: nothing to migrate
    assert _held(first) == [] and _held(again) == []
    assert "registry.web" in again and "registry.ops.metrics" in again  # the catalog and /metrics are on


@pytest.mark.slow
def test_old_schema_is_upgraded_by_serve(tmp_path):
    from alembic import command

    from registry.index.migrate import alembic_config

    data = tmp_path / "data"
    data.mkdir()
    url = f"sqlite+aiosqlite:///{data / 'index.db'}"
    command.upgrade(alembic_config(url), "0001_index")
    assert _revisions(data) == {"0001_index"}
    modules = _serve_and_list_modules(data)
    assert _revisions(data) == _heads()
    assert _held(modules) == []


def test_metrics_pool_figures_on_sqlite_are_the_query_pools(tmp_path):
    """On SQLite the pool gauge counts the reader and writer connections (no async engine)."""
    from registry.index.database import READERS, Database
    from registry.ops.metrics import _pool_figures
    from registry.state import INDEX

    class _App(dict):
        pass

    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'index.db'}")

    class _Index:
        pass

    idx = _Index()
    idx.db = db
    app = _App({INDEX: idx})
    figures = _pool_figures(app)
    assert figures == {"checked_out": 0, "idle": 0, "size": READERS + 1}
    assert not db.has_engine


def test_catalog_page_renders_after_a_lean_start(tmp_path):
    """jinja2 is not held at start; the first page asked for still renders (in a fresh server)."""
    script = SERVER.replace(
        'print(json.dumps(sorted(sys.modules)), flush=True)',
        'before = "jinja2" in sys.modules\n'
        '    page = urllib.request.urlopen(f"http://127.0.0.1:{port}/ui/", timeout=30).read().decode()\n'
        '    print(json.dumps([before, "jinja2" in sys.modules, "<html" in page.lower()]), flush=True)')
    out = subprocess.run([sys.executable, "-c", script, str(free_port()), str(tmp_path / "data")],
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[-1]) == [False, True, True]
