"""The pull-through cache: Dockyard's ``proxy:`` against distribution 2.8.2's proxy mode
(``proxy: remoteurl:``), both in front of the same upstream (a distribution 2.8.2 with its access
log on, so upstream GETs can be counted), in one run.

- cold pull: a fresh image (5 random layers) pushed to the upstream, then pulled through the
  cache (manifest, then every blob in turn); each side pulls its own fresh image per round;
- warm pull: the same image again (served from the cache), once the cold pulls' fills are on
  disk (a fill is committed just after its last byte went out; a pull in that moment waits for
  the commit on both sides and measures the disk's fsync, not the cache); each sample is
  WARM_PULLS pulls in a row (one pull of 5 x 40 MiB is ~0.1 s: too short to time alone);
- warm pull against Dockyard's normal pull speed: the same Dockyard serving the same bytes from a
  repository pushed to it directly;
- ten concurrent cold pulls of one image: upstream GETs per blob (from the upstream's access log).
"""
from __future__ import annotations

import json
import os
import re
import threading
import time
from pathlib import Path

from bench.alternate import alternate, log, pair_row
from bench.oci_http import MANIFEST_ACCEPT, OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST, Client, file_digest
from bench.plan import Plan, size_label
from bench.procs import Processes, Scratch, free_port, venv_tool, wait_for_port
from bench.rows import Row, row, unavailable

AREA = "proxy"
DY, REF = "dockyard", "distribution"
REF_NAME = "distribution 2.8.2 proxy mode"
LAYERS = 5
CONCURRENT = 10
WARM_PULLS = 3
COLD_ROUNDS = 5  # full mode: one cold sample is one disk-bound pull, the spread is wide
MB = 1e6

_DIST = """\
version: 0.1
log:
  level: {level}
  accesslog:
    disabled: {no_access_log}
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
{proxy}"""


def _distribution(procs: Processes, work: Path, access_log: bool = False, remote: str = "") -> tuple[int, Path]:
    port = free_port()
    work.mkdir(parents=True, exist_ok=True)
    proxy = f"proxy:\n  remoteurl: {remote}\n" if remote else ""
    (work / "config.yml").write_text(_DIST.format(level="info" if access_log else "error",
                                                  no_access_log="false" if access_log else "true",
                                                  root=work / "data", port=port, proxy=proxy))
    log_path = work / "registry.log"
    proc = procs.start(["docker-registry", "serve", str(work / "config.yml")], log_path)
    wait_for_port(port, proc)
    return port, log_path


def _dockyard_cache(procs: Processes, work: Path, upstream_port: int) -> int:
    port = free_port()
    work.mkdir(parents=True, exist_ok=True)
    (work / "registry.yml").write_text(json.dumps({"proxy": {"upstreams": [
        {"name": "up", "url": f"http://127.0.0.1:{upstream_port}", "tag_ttl": "10m", "timeout": "30s"}]}}))
    proc = procs.start([venv_tool("dockyard-registry"), "serve", "--listen", f"127.0.0.1:{port}", "--data-dir",
                        str(work / "data"), "--config", str(work / "registry.yml")], work / "registry.log")
    wait_for_port(port, proc)
    return port


class Images:
    """Fresh images of LAYERS random layers, pushed to a registry with the bench client."""

    def __init__(self, work: Path, layer_size: int) -> None:
        self.work, self.layer_size = work, layer_size
        self.count = 0

    def push(self, client: Client, name: str) -> list[str]:
        """Push a new image as ``name:1``; returns its blob digests (config last)."""
        self.count += 1
        digests, layers = [], []
        for i in range(LAYERS):
            path = self.work / f"layer{i}"
            with open(path, "wb") as f:
                for _ in range(max(1, self.layer_size >> 20)):
                    f.write(os.urandom(1 << 20))
            digest = file_digest(path)
            client.push_file(name, path, digest)
            layers.append({"mediaType": OCI_LAYER_GZIP, "digest": digest, "size": path.stat().st_size})
            digests.append(digest)
        config = json.dumps({"architecture": "amd64", "os": "linux", "n": self.count,
                             "rootfs": {"type": "layers", "diff_ids": digests}}).encode()
        config_digest = client.push_bytes(name, config)
        manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": layers,
                               "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)}})
        client.put_manifest(name, "1", manifest.encode())
        return [*digests, config_digest]


def _pull(client: Client, name: str) -> int:
    """Manifest by tag, then every blob in turn; returns the bytes moved."""
    resp = client.request("GET", f"/v2/{name}/manifests/1", headers={"Accept": MANIFEST_ACCEPT})
    doc = json.loads(resp.read())
    return sum(client.pull_blob(name, d["digest"]) for d in [doc["config"], *doc["layers"]])


def _gets_per_blob(log_path: Path, digests: list[str], since: int) -> float:
    text = log_path.read_bytes()[since:].decode(errors="replace")
    counts = [len(re.findall(rf'"GET /v2/[^ ]*/blobs/{re.escape(d)} ', text)) for d in digests]
    return sum(counts) / len(counts)


def _settle() -> None:
    """Let the last fills commit (their fsync and rename run just after the last byte was sent)."""
    time.sleep(1.0)
    os.sync()


def run(plan: Plan, scratch: Scratch, procs: Processes) -> list[Row]:
    work = scratch.dir("proxy")
    try:
        up_port, up_log = _distribution(procs, work / "upstream", access_log=True)
        up = Client(up_port)
        ports = {DY: _dockyard_cache(procs, work / "dockyard", up_port),
                 REF: _distribution(procs, work / "distribution", remote=f"http://127.0.0.1:{up_port}")[0]}
    except Exception as e:  # noqa: BLE001 - a subject that cannot start is an n/a row
        return [unavailable(AREA, "pull-through cache", "MB/s", "higher", f"{e.__class__.__name__}: {e}")]
    clients = {side: Client(port) for side, port in ports.items()}
    prefix = {DY: "up/", REF: ""}
    images = Images(work, plan.image_layer_size)
    image_mb = LAYERS * max(1, plan.image_layer_size >> 20) * (1 << 20) / MB
    label = f"{LAYERS} x {size_label(plan.image_layer_size)} layers"
    last: dict[str, str] = {}

    def cold(side: str, rnd: int) -> float:
        name = f"bench/cold-{side}-{rnd}"
        images.push(up, name)
        os.sync()
        start = time.perf_counter()
        _pull(clients[side], prefix[side] + name)
        last[side] = name
        return image_mb / (time.perf_counter() - start)

    def warm(side: str, _rnd: int) -> float:
        start = time.perf_counter()
        for _ in range(pulls):
            _pull(clients[side], prefix[side] + last[side])
        return pulls * image_mb / (time.perf_counter() - start)

    pulls = 1 if plan.quick else WARM_PULLS
    out: list[Row] = []
    for metric, measure, rounds in (("cold", cold, plan.rounds if plan.quick else max(COLD_ROUNDS, plan.rounds)),
                                    ("warm", warm, plan.rounds)):
        log(f"proxy: {metric} pulls")
        if metric == "warm":
            _settle()
        res = alternate([DY, REF], rounds, measure)
        out.append(pair_row(AREA, f"{metric} pull through the cache, {label}", "MB/s", "higher", res, DY, REF,
                            REF_NAME))

    log("proxy: warm pull vs local pull on the same Dockyard")
    images.push(clients[DY], "bench/local")
    _settle()
    names = {"cache": prefix[DY] + last[DY], "local": "bench/local"}

    def same_server(side: str, _rnd: int) -> float:
        start = time.perf_counter()
        for _ in range(pulls):
            _pull(clients[DY], names[side])
        return pulls * image_mb / (time.perf_counter() - start)

    res = alternate(["cache", "local"], max(5, plan.rounds), same_server)
    out.append(pair_row(AREA, f"warm pull through the cache vs a local repository, {label}", "MB/s", "higher", res,
                        "cache", "local", "dockyard, same server, pushed repository"))

    log(f"proxy: {CONCURRENT} concurrent cold pulls")
    gets: dict[str, float] = {}
    for side in (DY, REF):
        name = f"bench/conc-{side}"
        digests = images.push(up, name)
        since = up_log.stat().st_size
        errors: list[BaseException] = []

        def one() -> None:
            c = Client(ports[side])
            try:
                _pull(c, prefix[side] + name)
            except BaseException as e:  # noqa: BLE001
                errors.append(e)
            finally:
                c.close()

        threads = [threading.Thread(target=one) for _ in range(CONCURRENT)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        time.sleep(0.5)  # the access log line is written after the response
        gets[side] = _gets_per_blob(up_log, digests, since)
        if errors:
            log(f"{side}: {len(errors)} of {CONCURRENT} concurrent pulls failed: {errors[0]}")
    out.append(row(AREA, f"upstream GETs per blob, {CONCURRENT} concurrent cold pulls of one image", "GETs",
                   "lower", gets.get(DY), gets.get(REF), ref_name=REF_NAME,
                   note="counted in the upstream's access log"))
    for c in [up, *clients.values()]:
        c.close()
    return out
