"""Garbage collection runs on one replica at a time: the others skip while one holds the lock."""
from __future__ import annotations

from registry.gc import collect
from registry.index import Index
from registry.index.gc_lock import gc_lock
from registry.storage.filesystem import FilesystemDriver


async def test_a_second_collector_skips_while_the_first_holds_the_lock(config, tmp_path):
    replica_a, replica_b = Index(config.database_url), Index(config.database_url)
    driver = FilesystemDriver(str(tmp_path / "blobs"))
    await driver.open()
    try:
        await replica_a.migrate()
        async with gc_lock(replica_a.engine) as held:
            assert held
            report = await collect(replica_b, driver, grace=0)
            assert report.skipped and report.scanned == 0
            async with gc_lock(replica_b.engine) as again:
                assert not again
        # Released: the other replica collects now.
        assert not (await collect(replica_b, driver, grace=0)).skipped
    finally:
        await replica_a.close()
        await replica_b.close()
