"""Snapshots and power cuts (node/images/content.py): a new snapshot counts only in the boot that
made it until a syncfs settles it; one a reboot left unsettled is unpacked again from its blob,
whose bytes are durable, instead of being trusted with files that may have lost their data."""
from __future__ import annotations

import json
import tarfile

import pytest

from node.images import content as content_mod
from node.images.content import ContentStore
from node.images.store import Image
from oci.manifest import ImageConfig
from tests.node.images.test_unpack import diff_id_of, entry, make_tar

DATA = b"#!/bin/sh\necho hello\n" * 64


@pytest.fixture
def layer(tmp_path, monkeypatch):
    monkeypatch.setattr(content_mod, "_BOOT", ["bootA"])
    store = ContentStore(tmp_path / "images")
    blob = make_tar([entry("bin", tarfile.DIRTYPE), entry("bin/hello", data=DATA)])
    digest, diff_id = store.write_blob(blob), diff_id_of(blob)
    fs = store.unpack(digest, diff_id, diff_id)  # one layer: its chain ID is its diff_id
    return store, digest, diff_id, fs


def _image(store: ContentStore, digest, diff_id) -> Image:
    config = ImageConfig.parse(json.dumps({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [str(diff_id)]}}).encode())
    return Image("sha256:" + "1" * 64, config, [], [], 0, None, "sha256:" + "2" * 64,
                 "application/vnd.oci.image.manifest.v1+json",
                 [{"digest": str(digest), "diff_id": str(diff_id)}], _snapshots=store.snapshots)


def _reboot(monkeypatch, boot: str = "bootB") -> None:
    monkeypatch.setattr(content_mod, "_BOOT", [boot])


def test_a_new_snapshot_is_pending_for_its_boot_only(layer, monkeypatch):
    store, digest, diff_id, fs = layer
    snap = fs.parent
    assert sorted(p.name for p in snap.iterdir()) == ["fs", "meta.bootA.json"]
    assert (store.dir / "snapshots.pending").exists()
    assert store.has_snapshot(diff_id) and store.snapshot_size(diff_id) == len(DATA)
    _reboot(monkeypatch)
    assert not store.has_snapshot(diff_id)  # its files may be empty after a crash


def test_an_unsettled_snapshot_is_unpacked_again_after_a_reboot(layer, monkeypatch):
    store, digest, diff_id, fs = layer
    (fs / "bin" / "hello").write_bytes(b"")  # what a power cut leaves: the name without the data
    _reboot(monkeypatch)
    dirs = _image(store, digest, diff_id).layer_dirs()
    assert dirs == [fs]
    assert (fs / "bin" / "hello").read_bytes() == DATA
    assert (fs.parent / "meta.bootB.json").is_file() and not (fs.parent / "meta.bootA.json").exists()


def test_a_settled_snapshot_survives_a_reboot(layer, monkeypatch):
    store, digest, diff_id, fs = layer
    synced = []
    real = content_mod._syncfs
    monkeypatch.setattr(content_mod, "_syncfs", lambda path: (synced.append(path), real(path)))
    assert store.settle() == 1
    assert synced == [store.snapshots]
    assert sorted(p.name for p in fs.parent.iterdir()) == ["fs", "meta.json"]
    assert not (store.dir / "snapshots.pending").exists()
    assert store.settle() == 0 and synced == [store.snapshots]  # nothing left: no second sync
    _reboot(monkeypatch)
    assert store.has_snapshot(diff_id)
    (fs / "bin" / "marker").write_text("kept")  # a settled snapshot is used as it is, not re-made
    assert _image(store, digest, diff_id).layer_dirs() == [fs]
    assert (fs / "bin" / "marker").exists()


def test_a_reboot_left_snapshot_without_its_blob_is_a_clear_error(layer, monkeypatch):
    from node.images.errors import ImageError
    store, digest, diff_id, fs = layer
    store.remove_blob(digest)
    _reboot(monkeypatch)
    with pytest.raises(ImageError, match="pull the image again"):
        _image(store, digest, diff_id).layer_dirs()


def test_settle_leaves_other_boots_pending_snapshots_alone(layer, monkeypatch):
    store, digest, diff_id, fs = layer
    _reboot(monkeypatch)
    (store.dir / "snapshots.pending").touch()
    monkeypatch.setattr(content_mod, "_syncfs", lambda path: pytest.fail("nothing of this boot to sync"))
    assert store.settle() == 0
    assert (fs.parent / "meta.bootA.json").exists() and not (fs.parent / "meta.json").exists()
