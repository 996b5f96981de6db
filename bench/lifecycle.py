"""Push throughput with the online GC worker and notifications on vs off (issue #16; target:
under 5 % apart). Standalone: ``python -m bench.lifecycle [--images N] [--rounds R]``.

Two registries as users start them (SQLite, filesystem): "off" with ``gc.enabled: false`` and
no endpoints; "on" with the worker (default review delay, so it reviews the uploads' queue rows
as they come due: none during the run) and one notification endpoint, a local receiver that
answers 200. Eight threads push small images (config + 2 layers + manifest) over HTTP; rounds
alternate between the two so machine load hits both alike. Prints images/s and the ratio.
"""
from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bench.procs import free_port, wait_for_port

REGISTRY = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "dockyard-registry"
THREADS = 8
OCI = "application/vnd.oci.image.manifest.v1+json"


class _Receiver(BaseHTTPRequestHandler):
    events = 0

    def do_POST(self):  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        _Receiver.events += len(json.loads(body).get("events", []))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def _digest(b: bytes) -> str:
    return "sha256:" + hashlib.sha256(b).hexdigest()


def _push_images(host: str, prefix: str, count: int) -> None:
    def worker(n: int) -> None:
        conn = http.client.HTTPConnection(host, timeout=60)
        for i in range(n, count, THREADS):
            repo = f"{prefix}/r{i % 4}"
            blobs = [json.dumps({"os": "linux", "i": i, "p": prefix}).encode(), os.urandom(4096), os.urandom(8192)]
            for b in blobs:
                conn.request("POST", f"/v2/{repo}/blobs/uploads/?digest={_digest(b)}", body=b)
                r = conn.getresponse()
                r.read()
                assert r.status == 201, r.status
            doc = {"schemaVersion": 2, "mediaType": OCI,
                   "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": _digest(blobs[0]), "size": len(blobs[0])},
                   "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": _digest(b), "size": len(b)} for b in blobs[1:]]}
            conn.request("PUT", f"/v2/{repo}/manifests/t{i}", body=json.dumps(doc).encode(), headers={"Content-Type": OCI})
            r = conn.getresponse()
            r.read()
            assert r.status == 201, r.status
        conn.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _start(work: Path, name: str, config: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cfg = work / f"{name}.yml"
    cfg.write_text(f"listen: 127.0.0.1:{port}\ndata_dir: {work / name}\n{config}")
    log = open(work / f"{name}.log", "w")
    proc = subprocess.Popen([str(REGISTRY), "serve", "--config", str(cfg)], stdout=log, stderr=log)
    wait_for_port(port, proc, 60)
    return proc, f"127.0.0.1:{port}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.lifecycle")
    p.add_argument("--images", type=int, default=200)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{receiver.server_address[1]}/events"
    procs = []
    with tempfile.TemporaryDirectory(prefix="bench-lifecycle-") as tmp:
        work = Path(tmp)
        try:
            off = _start(work, "off", "gc: {enabled: false}\n")
            on = _start(work, "on", f"gc: {{enabled: true}}\nnotifications:\n  endpoints:\n    - {{name: bench, url: '{url}'}}\n")
            procs = [off[0], on[0]]
            times = {"off": [], "on": []}
            _push_images(off[1], "warm", 16)
            _push_images(on[1], "warm", 16)
            for rnd in range(args.rounds):
                for name, (_, host) in (("off", off), ("on", on)) if rnd % 2 == 0 else (("on", on), ("off", off)):
                    started = time.perf_counter()
                    _push_images(host, f"b{rnd}", args.images)
                    times[name].append(time.perf_counter() - started)
            time.sleep(2)
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(10)
            receiver.shutdown()
    rate = {k: args.images / (sum(v) / len(v)) for k, v in times.items()}
    ratio = rate["on"] / rate["off"]
    print(f"push throughput, {args.images} images x {args.rounds} rounds, {THREADS} threads:")
    print(f"  gc worker + notifications off: {rate['off']:.1f} images/s")
    print(f"  gc worker + notifications on:  {rate['on']:.1f} images/s  (ratio on/off {ratio:.3f}, "
          f"{(1 - ratio) * 100:+.1f} % slower; events delivered {_Receiver.events})")
    print(f"  load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
