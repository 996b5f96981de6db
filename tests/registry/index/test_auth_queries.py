"""The auth tables and queries on both index backends (SQLite and PostgreSQL)."""
from __future__ import annotations

from registry.index import Index
from registry.index.auth_queries import AuthQueries


async def test_users_and_robots(index_url):
    idx = Index(index_url)
    try:
        await idx.migrate()
        q = AuthQueries(idx.db)
        assert await q.add_user("alice", "$2b$04$hash-a", groups=["team-a", "ops"])
        assert not await q.add_user("alice", "$2b$04$other")
        assert await q.add_user("root", "$2b$04$hash-r", is_admin=True)
        alice = await q.get_user("alice")
        assert (alice.name, alice.password_hash, alice.is_admin, alice.groups) == ("alice", "$2b$04$hash-a", False,
                                                                                   ("team-a", "ops"))
        before = alice.password_changed_at
        assert await q.set_password("alice", "$2b$04$hash-b")
        after = await q.get_user("alice")
        assert after.password_hash == "$2b$04$hash-b" and after.password_changed_at >= before
        assert await q.update_user("alice", is_admin=True, groups=["dev"])
        assert (await q.get_user("alice")).groups == ("dev",)
        await q.upsert_user_hash("carol", "$2y$04$c")
        await q.upsert_user_hash("alice", "$2y$04$a2")
        users = await q.list_users()
        assert [(u.name, u.password_hash, u.is_admin) for u in users] == [
            ("alice", "$2y$04$a2", True), ("carol", "$2y$04$c", False), ("root", "$2b$04$hash-r", True)]
        assert await q.remove_user("carol") and not await q.remove_user("carol")
        assert await q.get_user("carol") is None

        scopes = [{"pattern": "team-a/*", "actions": ["pull", "push"]}]
        assert await q.add_robot("ci", "ab" * 32, scopes, None)
        assert not await q.add_robot("ci", "cd" * 32, [], None)
        robot = await q.get_robot("ci")
        assert robot.scopes == tuple(scopes) and robot.revoked_at is None
        assert await q.revoke_robot("ci") and not await q.revoke_robot("ci")
        assert (await q.get_robot("ci")).revoked_at is not None
        assert [r.name for r in await q.list_robots()] == ["ci"]
    finally:
        await idx.close()
