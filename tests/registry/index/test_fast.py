"""registry/index/fast.py answers what ``conn.execute`` answers, on both index backends."""
from __future__ import annotations

import pytest
from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError

from registry.index import Index, ManifestRecord, fast
from registry.index.models import Blob, Manifest, Repository

_SIZES_IN = select(Blob.digest, Blob.size).where(Blob.digest.in_(bindparam("digests", expanding=True))) \
    .order_by(Blob.digest)
_ANNOTATIONS = select(Manifest.annotations).where(Manifest.digest == bindparam("digest"))
_REPO_ID = select(Repository.id).where(Repository.name == bindparam("name"))
_INSERT_REPO = Repository.__table__.insert()


async def test_same_answers_as_sqlalchemy(index_url):
    idx = Index(index_url)
    try:
        await idx.migrate()
        digests = [f"sha256:{c * 64}" for c in "abc"]
        for i, d in enumerate(digests):
            await idx.link_blob("x/y", d, 10 + i, mark=await idx.before_bytes(d))
        await idx.put_manifest("x/y", ManifestRecord(digest=digests[0], media_type="m", size=1,
                                                     annotations={"k": "v"}, blobs=tuple(digests[1:])))

        def compare(conn):
            for stmt, params in ((_SIZES_IN, {"digests": digests[:2]}), (_SIZES_IN, {"digests": []}),
                                 (_SIZES_IN, {"digests": digests}), (_ANNOTATIONS, {"digest": digests[0]}),
                                 (_REPO_ID, {"name": "x/y"}), (_REPO_ID, {"name": "none"})):
                assert [tuple(r) for r in fast.execute(conn, stmt, params).all()] == \
                    [tuple(r) for r in conn.execute(stmt, params).all()]
            assert fast.execute(conn, _ANNOTATIONS, {"digest": digests[0]}).scalar() == {"k": "v"}  # JSON decoded
            assert fast.execute(conn, _REPO_ID, {"name": "none"}).scalar_one_or_none() is None
            return fast.execute(conn, _REPO_ID, {"name": "x/y"}).scalar_one()

        assert isinstance(await idx.db.read(compare), int)

        def duplicate(conn):
            fast.execute(conn, _INSERT_REPO, {"name": "x/y", "created_at": 0.0}, columns=("name", "created_at"))

        with pytest.raises(IntegrityError):  # raised as SQLAlchemy's error, as conn.execute would
            await idx.db.write(duplicate)
    finally:
        await idx.close()
