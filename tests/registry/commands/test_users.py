"""``dockyard-registry user ...`` and ``token ...`` against a SQLite index in tmp."""
from __future__ import annotations

import asyncio
import io

import bcrypt
import pytest

from registry.__main__ import main
from registry.auth.passwords import robot_secret_digest
from registry.index import Index
from registry.index.auth_queries import AuthQueries


@pytest.fixture
def run(tmp_path, monkeypatch, capsys):
    def go(*argv: str, stdin: str = "") -> tuple[int, str, str]:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = main([*argv, "--data-dir", str(tmp_path / "data")])
        out, err = capsys.readouterr()
        return code, out, err
    return go


def _records(tmp_path):
    async def read():
        idx = Index(f"sqlite+aiosqlite:///{tmp_path / 'data' / 'index.db'}")
        try:
            q = AuthQueries(idx.db)
            return await q.list_users(), await q.list_robots()
        finally:
            await idx.close()
    return asyncio.run(read())


def test_user_commands(run, tmp_path):
    assert run("user", "add", "alice", "--password-stdin", "--group", "team-a", "--group", "ops",
               stdin="pw-alice\n")[0] == 0
    assert run("user", "add", "root", "--password-stdin", "--admin", stdin="pw-root\n")[0] == 0
    code, _, err = run("user", "add", "alice", "--password-stdin", stdin="x\n")
    assert code == 1 and "exists" in err
    code, _, err = run("user", "add", "bad name", "--password-stdin", stdin="x\n")
    assert code == 1 and "user name" in err
    code, _, err = run("user", "add", "eve", "--password-stdin", stdin="\n")
    assert code == 1 and "empty" in err
    code, _, err = run("user", "add", "eve")  # no terminal, no --password-stdin
    assert code == 1 and "--password-stdin" in err
    code, out, _ = run("user", "ls")
    assert out.splitlines() == ["alice\t-\tteam-a,ops", "root\tadmin\t-"]
    users, _ = _records(tmp_path)
    alice = users[0]
    assert alice.password_hash.startswith("$2b$12$") and "pw-alice" not in alice.password_hash
    assert bcrypt.checkpw(b"pw-alice", alice.password_hash.encode())
    assert run("user", "passwd", "alice", "--password-stdin", stdin="pw-new\n")[0] == 0
    assert bcrypt.checkpw(b"pw-new", _records(tmp_path)[0][0].password_hash.encode())
    assert run("user", "set", "alice", "--admin", "--group", "dev")[0] == 0
    assert run("user", "ls")[1].splitlines()[0] == "alice\tadmin\tdev"
    assert run("user", "rm", "alice")[0] == 0
    assert run("user", "rm", "alice")[0] == 1
    assert run("user", "passwd", "nobody", "--password-stdin", stdin="x\n")[0] == 1


def test_import_htpasswd(run, tmp_path):
    ht = tmp_path / "htpasswd"
    h = bcrypt.hashpw(b"carolpw", bcrypt.gensalt(4)).decode().replace("$2b$", "$2y$")
    ht.write_text(f"carol:{h}\n")
    code, out, _ = run("user", "import-htpasswd", str(ht))
    assert code == 0 and "imported 1 user(s)" in out
    assert _records(tmp_path)[0][0].password_hash == h
    ht.write_text("dave:$apr1$abc$def\n")
    code, _, err = run("user", "import-htpasswd", str(ht))
    assert code == 1 and ":1:" in err


def test_token_commands(run, tmp_path):
    code, out, err = run("token", "create", "ci", "--scope", "team-a/*:pull,push", "--expires", "30d")
    assert code == 0 and "robot$ci" in err
    secret = out.strip()
    assert secret.startswith("dyr_") and len(secret) > 40
    _, robots = _records(tmp_path)
    assert robots[0].secret_sha256 == robot_secret_digest(secret)
    assert robots[0].scopes == ({"pattern": "team-a/*", "actions": ["pull", "push"]},)
    assert run("token", "create", "bad", "--scope", "team-a/*:write")[0] == 2
    code, out, _ = run("token", "ls")
    assert out.startswith("robot$ci\tactive") and "team-a/*:pull,push" in out and secret not in out
    assert run("token", "revoke", "robot$ci")[0] == 0
    assert "\trevoked\t" in run("token", "ls")[1]
    assert run("token", "revoke", "ci")[0] == 1
