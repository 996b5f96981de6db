"""Layer tarballs for the catalog's file-list tests: made in memory, gzip, zstd or plain."""
from __future__ import annotations

import gzip
import io
import json
import tarfile

from oci import mediatypes as mt
from oci.digest import Digest
from tests.registry.oci_client import push_blob


def tar_layer(files: dict[str, bytes | str | None], compression: str = "gzip", *, owner: tuple[int, int] = (0, 0),
              names: tuple[str, str] = ("root", "root")) -> bytes:
    """{path: bytes (a file) | "->target" (a symlink) | None (a directory)} as a layer blob."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, content in files.items():
            info = tarfile.TarInfo(path)
            info.uid, info.gid = owner
            info.uname, info.gname = names
            info.mtime = 1700000000
            if content is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif isinstance(content, str) and content.startswith("->"):
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, content[2:], 0o777
                tar.addfile(info)
            else:
                info.size, info.mode = len(content), 0o644
                tar.addfile(info, io.BytesIO(content))
    return compress(buf.getvalue(), compression)


def compress(data: bytes, compression: str) -> bytes:
    if compression == "gzip":
        return gzip.compress(data, compresslevel=1, mtime=0)
    if compression == "zstd":
        import zstandard

        return zstandard.ZstdCompressor(level=1).compress(data)
    return data


LAYER_TYPES = {"gzip": mt.OCI_LAYER_GZIP, "zstd": mt.OCI_LAYER_ZSTD, "none": "application/vnd.oci.image.layer.v1.tar"}


async def push_layered(client, name: str, tag: str, layers: list[bytes], compression: str = "gzip",
                       labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None) -> dict:
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Labels": labels or {}},
                         "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    await push_blob(client, name, config)
    for layer in layers:
        await push_blob(client, name, layer)
    doc = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
           "config": {"mediaType": mt.OCI_CONFIG, "digest": str(Digest.of(config)), "size": len(config)},
           "layers": [{"mediaType": LAYER_TYPES[compression], "digest": str(Digest.of(l)), "size": len(l)} for l in layers]}
    if annotations:
        doc["annotations"] = annotations
    raw = json.dumps(doc).encode()
    r = await client.put(f"/v2/{name}/manifests/{tag}", data=raw, headers={"Content-Type": mt.OCI_MANIFEST})
    assert r.status == 201, await r.text()
    return {"digest": str(Digest.of(raw)), "layers": [str(Digest.of(l)) for l in layers], "raw": raw}


def _ustar_header(name: str) -> bytes:
    h = bytearray(512)
    h[0:len(name)] = name.encode()
    h[100:108], h[108:116], h[116:124] = b"0000644\0", b"0000000\0", b"0000000\0"
    h[124:136], h[136:148] = b"00000000000\0", b"14677133000\0"
    h[156:157], h[257:265] = b"0", b"ustar\x0000"
    h[148:156] = b" " * 8
    h[148:156] = f"{sum(h):06o}\0 ".encode()
    return bytes(h)


def many_files_layer(count: int, compression: str = "gzip") -> bytes:
    """A layer of ``count`` empty files in 100 directories (ustar headers made directly: fast)."""
    body = b"".join(_ustar_header(f"data/d{i % 100:02d}/file-{i:06d}") for i in range(count))
    return compress(body + bytes(1024), compression)
