"""`dockyard build` end to end: the seed's example, the cache, stages, args, ignore rules,
heredocs, cache mounts, reproducibility and every bad input. Root only (RUN steps are
containers); the busybox test image is built here, never pulled."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.e2e.node_build_support import (BASE, base_archive, flatten, image_layers, leftovers,  # noqa: F401
                                          load_base, make_context, remove_cgroup_parent, run_dockyard)

pytestmark = [pytest.mark.e2e, pytest.mark.root, pytest.mark.slow]

NET = ("--network", "none")  # RUN containers without a bridge: faster; one test uses the default


@pytest.fixture(scope="module")
def root(tmp_path_factory, base_archive) -> Path:
    root = tmp_path_factory.mktemp("build-root") / "root"
    load_base(root, base_archive)
    yield root
    try:
        assert leftovers(root) == []
    finally:
        remove_cgroup_parent()


def build(root, ctx, *args, env=None, check=True, umask=0o077):
    # a strict caller umask: RUN steps must still run with 022
    old = os.umask(umask)
    try:
        result = run_dockyard(root, "build", "--progress", "plain", *NET, *args, str(ctx), env=env)
    finally:
        os.umask(old)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def iid(root, ref):
    return json.loads(run_dockyard(root, "inspect", ref).stdout)[0]["Id"]


def tree(root, ref):
    return flatten([p.read_bytes() for p in image_layers(root, ref)[1]])


def test_seed_example_builds_and_runs(root, tmp_path):
    make = "#!/bin/sh\necho built > \"$1/built.txt\"\nmkdir \"$1/made\"\n"
    app = "echo hello from app; cat /app/built.txt\n"
    ctx = make_context(tmp_path, {"make": make, "app.py": app},
                       "FROM dybase\nCOPY . /app\nRUN sh /app/make /app\nCMD sh /app/app.py\n")
    os.chmod(ctx / "make", 0o755)
    result = build(root, ctx, "-t", "seed:1")
    assert "#" in result.stderr and "[2/3] COPY . /app" in result.stderr and "DONE" in result.stderr
    out = run_dockyard(root, "run", "--rm", "--network", "none", "seed:1")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "hello from app\nbuilt\n"
    config = image_layers(root, "seed:1")[0]
    assert config["config"]["Cmd"] == ["/bin/sh", "-c", "sh /app/app.py"]
    assert [h.get("empty_layer", False) for h in config["history"][-3:]] == [False, False, True]
    assert config["history"][-2]["created_by"] == "RUN /bin/sh -c sh /app/make /app # buildkit"
    assert len(config["rootfs"]["diff_ids"]) == 5  # three base layers + COPY + RUN
    files = tree(root, "seed:1")
    assert files["app/built.txt"][1] == 0o644 and files["app/made"][1] == 0o755  # umask 022


def test_cache_hits_misses_and_mtime(root, tmp_path):
    ctx = make_context(tmp_path, {"a.txt": "one\n", "b.txt": "two\n"},
                       "FROM dybase\nRUN echo first > /first\nCOPY a.txt /a.txt\nRUN cat /a.txt > /copy\n"
                       "COPY b.txt /b.txt\n")
    first = build(root, ctx, "-t", "cache:1")
    assert "CACHED" not in first.stderr
    again = build(root, ctx, "-t", "cache:1")
    assert again.stderr.count("CACHED") == 4
    one = iid(root, "cache:1")
    os.utime(ctx / "a.txt", (1, 1))
    build(root, ctx, "-t", "cache:1")
    assert iid(root, "cache:1") == one  # only the mtime changed: same image
    (ctx / "b.txt").write_text("changed\n")
    changed = build(root, ctx, "-t", "cache:1")
    assert changed.stderr.count("CACHED") == 3 and iid(root, "cache:1") != one
    no_cache = build(root, ctx, "--no-cache", "-t", "cache:2")
    assert "CACHED" not in no_cache.stderr
    two = iid(root, "cache:2")
    # rmi sweeps what no image needs, but never the build cache's layers (images/pins)
    assert run_dockyard(root, "rmi", "cache:1", "cache:2").returncode == 0
    after = build(root, ctx, "-t", "cache:3")
    assert after.stderr.count("CACHED") == 4 and iid(root, "cache:3") == two
    assert run_dockyard(root, "run", "--rm", "--network", "none", "cache:3", "cat", "/copy", "/b.txt").stdout == \
        "one\nchanged\n"


def test_target_builds_only_needed_stages_and_build_args(root, tmp_path):
    ctx = make_context(tmp_path, {}, (
        "ARG BASE=dybase\nFROM ${BASE} AS base\nARG WHO=nobody\nRUN echo \"hi $WHO\" > /who\n"
        "FROM base AS broken\nRUN exit 7\n"
        "FROM base AS final\nARG WHO\nCOPY --from=base /who /copied\nRUN cat /copied > /final\n"
        "COPY --from=dybase /etc/passwd /from-image-passwd\n"
        "ENV SHOWN=${WHO:-unset} ALT=${WHO:+set}\n"))
    result = build(root, ctx, "--target", "final", "--build-arg", "WHO=alice", "-t", "stages:1")
    assert "exit 7" not in result.stderr  # the broken stage was never needed
    files = tree(root, "stages:1")
    assert "final" in files and "who" in files and "from-image-passwd" in files
    out = run_dockyard(root, "run", "--rm", "--network", "none", "stages:1", "sh", "-c", "cat /final; echo $SHOWN $ALT")
    assert out.stdout == "hi alice\nalice set\n"
    bad = build(root, ctx, "--target", "nope", check=False)
    assert bad.returncode == 1 and "target stage 'nope' could not be found" in bad.stderr
    failing = build(root, ctx, "--target", "broken", check=False)
    assert failing.returncode == 1 and "exit code: 7" in failing.stderr


def test_dockerignore_and_dockerfile_specific_ignore(root, tmp_path):
    ctx = make_context(tmp_path, {"keep.txt": "k", "skip.log": "s", "logs/a.log": "a", "logs/important.log": "i",
                                  ".dockerignore": "*.log\nlogs\n!logs/important.log\n"},
                       "FROM dybase\nCOPY . /ctx/\n")
    build(root, ctx, "-t", "ignore:1")
    names = {p for p in tree(root, "ignore:1") if p.startswith("ctx/")}
    assert names == {"ctx/keep.txt", "ctx/logs", "ctx/logs/important.log", "ctx/Dockerfile", "ctx/.dockerignore"}
    elsewhere = tmp_path.parent / f"{tmp_path.name}-dockerfiles"  # -f may name a file outside the context
    elsewhere.mkdir()
    (elsewhere / "special.Dockerfile").write_text("FROM dybase\nCOPY . /ctx/\n")
    (elsewhere / "special.Dockerfile.dockerignore").write_text("keep.txt\n")
    build(root, ctx, "-f", str(elsewhere / "special.Dockerfile"), "-t", "ignore:2")
    names = {p for p in tree(root, "ignore:2") if p.startswith("ctx/")}
    assert "ctx/keep.txt" not in names and "ctx/skip.log" in names


def test_heredocs(root, tmp_path):
    ctx = make_context(tmp_path, {}, (
        "FROM dybase\nARG NAME=world\nENV WHO=$NAME\n"
        "RUN <<EOF\necho one > /one\necho \"two $WHO\" > /two\nEOF\n"
        "COPY <<EOF /greeting\nhello ${WHO}\nEOF\n"
        "COPY <<'EOF' /literal\nhello ${WHO}\nEOF\n"
        "RUN <<EOF\n#!/bin/sh\necho script > /script-ran\nEOF\n"
        "RUN cat <<A > /from-cat\ninside\nA\n"))
    build(root, ctx, "-t", "heredoc:1")
    out = run_dockyard(root, "run", "--rm", "--network", "none", "heredoc:1", "cat", "/one", "/two", "/greeting",
                       "/literal", "/script-ran", "/from-cat")
    assert out.stdout == "one\ntwo world\nhello world\nhello ${WHO}\nscript\ninside\n", out.stderr


def test_cache_mount_persists_and_stays_out_of_the_image(root, tmp_path):
    dockerfile = "FROM dybase\nARG N\nRUN --mount=type=cache,target=/cache echo $N >> /cache/log && cat /cache/log > /seen\n"
    ctx = make_context(tmp_path, {}, dockerfile)
    build(root, ctx, "--build-arg", "N=1", "-t", "cmount:1")
    build(root, ctx, "--build-arg", "N=2", "-t", "cmount:2")
    out = run_dockyard(root, "run", "--rm", "--network", "none", "cmount:2", "cat", "/seen")
    assert out.stdout == "1\n2\n"
    assert not any(p.startswith("cache/") for p in tree(root, "cmount:2"))
    pruned = run_dockyard(root, "builder", "prune", "-f")
    assert pruned.returncode == 0 and pruned.stdout.startswith("Total:")
    build(root, ctx, "--build-arg", "N=3", "-t", "cmount:3")
    assert run_dockyard(root, "run", "--rm", "--network", "none", "cmount:3", "cat", "/seen").stdout == "3\n"


def test_reproducible_with_source_date_epoch(root, tmp_path):
    ctx = make_context(tmp_path, {"f.txt": "data\n"},
                       "FROM dybase\nCOPY f.txt /f.txt\nRUN echo run > /r && mkdir -p /d && touch /d/x\nLABEL a=b\n")
    env = {"SOURCE_DATE_EPOCH": "1700000000"}
    ids = []
    for n in (1, 2):
        iid_file = tmp_path / f"iid{n}"
        result = build(root, ctx, "--no-cache", "-q", "--iidfile", str(iid_file), "-t", f"repro:{n}", env=env)
        assert result.stdout.strip() == iid_file.read_text()  # -q prints only the ID
        ids.append(iid_file.read_text())
        os.utime(ctx / "f.txt")  # a newer mtime is clamped to the epoch
    assert ids[0] == ids[1]
    docs = [json.loads(run_dockyard(root, "inspect", f"repro:{n}").stdout)[0] for n in (1, 2)]
    assert docs[0]["Descriptor"]["digest"] == docs[1]["Descriptor"]["digest"]
    config = image_layers(root, "repro:1")[0]
    assert config["created"] == "2023-11-14T22:13:20Z"
    for layer in image_layers(root, "repro:1")[1][-2:]:
        assert layer.read_bytes()[4:8] == b"\0\0\0\0"  # gzip header without a time


def test_whiteouts_hardlinks_and_default_network(root, tmp_path):
    ctx = make_context(tmp_path, {}, (
        "FROM dybase\nRUN rm /etc/motd && rm -r /data && echo x > /h1 && ln /h1 /h2 && ln -s /h1 /sym\n"
        "RUN mkdir /opq && touch /opq/old\nRUN rm -r /opq && mkdir /opq && touch /opq/new\n"))
    result = run_dockyard(root, "build", "--progress", "plain", "-t", "wh:1", str(ctx))  # default network: bridge
    assert result.returncode == 0, result.stderr
    files = tree(root, "wh:1")
    assert "etc/motd" not in files and "data" not in files and "data/keep.txt" not in files
    assert files["h2"][6] == "hardlink:h1" or files["h1"][6] == "hardlink:h2"
    assert files["sym"][6] == "/h1" and "opq/new" in files and "opq/old" not in files
    for name in ("etc/resolv.conf", "etc/hosts", "etc/hostname", ".dockerenv"):
        assert name not in files
    out = run_dockyard(root, "run", "--rm", "--network", "none", "wh:1", "ls", "/opq", "/etc/motd")
    assert "new" in out.stdout and "motd" in out.stderr


def test_run_steps_cannot_change_the_host(root, tmp_path):
    ctx = make_context(tmp_path, {}, (
        "FROM dybase\n"
        "RUN (echo evil > /proc/sys/kernel/hostname) 2>/dev/null && echo CHANGED > /r || echo refused > /r\n"
        "RUN (mount -t tmpfs none /mnt) 2>/dev/null && echo MOUNTED >> /r || echo refused >> /r\n"
        "RUN (echo x > /sys/kernel/notes) 2>/dev/null && echo WROTE >> /r || echo refused >> /r\n"))
    hostname = open("/proc/sys/kernel/hostname").read()
    build(root, ctx, "-t", "sandbox:1")
    out = run_dockyard(root, "run", "--rm", "--network", "none", "sandbox:1", "cat", "/r")
    assert out.stdout == "refused\nrefused\nrefused\n"
    assert open("/proc/sys/kernel/hostname").read() == hostname


BAD = [
    ("FROM dybase\nFROBNICATE x\n", {}, "Dockerfile:2: unknown instruction: FROBNICATE"),
    ("FROM dybase\nCOPY ../outside /x\n", {}, "forbidden path outside the build context: ../outside"),
    ("FROM dybase\nCOPY link/secret /x\n", {"link": "@/etc"}, "leaves the build context"),
    ("FROM dybase\nCOPY missing.txt /x\n", {}, "missing.txt: not found in the build context"),
    ("FROM dybase\nCOPY <<EOF /x\n", {}, "Dockerfile:2: unterminated heredoc"),
    ("FROM nosuchimage-xyz:1\n", {}, "FROM nosuchimage-xyz:1"),
]


def test_bad_input_is_one_line_and_moves_no_tag(root, tmp_path):
    before = iid(root, BASE)
    assert run_dockyard(root, "tag", BASE, "victim:1").returncode == 0
    for n, (dockerfile, files, message) in enumerate(BAD):
        ctx = make_context(tmp_path / f"ctx{n}", {k: v for k, v in files.items() if not v.startswith("@")}, dockerfile)
        for name, value in files.items():
            if value.startswith("@"):
                os.symlink(value[1:], ctx / name)
        result = build(root, ctx, "-t", "victim:1", check=False)
        assert result.returncode == 1, (message, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()[-1]) < 300  # one readable line at the end
    assert iid(root, "victim:1") == before
    assert leftovers(root) == []


def test_failing_run_reports_exit_code_and_output_and_leaves_nothing(root, tmp_path):
    ctx = make_context(tmp_path, {}, "FROM dybase\nRUN echo step-one > /one\n"
                                     "RUN echo out-line-1; echo out-line-2; echo err-line >&2; exit 3\n")
    run_dockyard(root, "tag", BASE, "failing:1")
    blobs_before = set(os.listdir(root / "images" / "content" / "blobs" / "sha256"))
    result = build(root, ctx, "-t", "failing:1", check=False)
    assert result.returncode == 1
    assert "Dockerfile:3:" in result.stderr and "exit code: 3" in result.stderr
    assert "out-line-2" in result.stderr and "err-line" in result.stderr
    assert iid(root, "failing:1") == iid(root, BASE)
    new = set(os.listdir(root / "images" / "content" / "blobs" / "sha256")) - blobs_before
    assert len(new) <= 1  # at most the first RUN's finished layer (kept for the cache), nothing half-written
    assert leftovers(root) == []
    assert not list((root / "images" / "snapshots").glob(".tmp-*"))


def test_from_image_missing_locally_is_pulled(root, tmp_path, reference_registry):
    ref = f"{reference_registry}/build/base:1"
    assert run_dockyard(root, "tag", BASE, ref).returncode == 0
    assert run_dockyard(root, "push", ref).returncode == 0
    fresh = tmp_path / "fresh-root"
    ctx = make_context(tmp_path / "ctx", {}, f"FROM {ref}\nRUN echo pulled > /p\n")
    result = build(fresh, ctx, "-t", "pulled:1")
    assert f"FROM {ref}" in result.stderr
    assert iid(fresh, ref) == iid(root, BASE)  # the base came through the pull path, byte for byte
    again = build(fresh, ctx, "--pull", "-t", "pulled:1")
    assert "CACHED" in again.stderr
    assert leftovers(fresh) == []


def test_add_url_with_checksum_and_bind_mount(root, tmp_path):
    import hashlib
    import http.server
    import threading
    served = tmp_path / "served"
    served.mkdir()
    (served / "remote.txt").write_text("from the web\n")
    digest = hashlib.sha256(b"from the web\n").hexdigest()
    handler = lambda *a, **kw: http.server.SimpleHTTPRequestHandler(*a, directory=str(served), **kw)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/remote.txt"
    try:
        ctx = make_context(tmp_path / "ctx", {"data/x.txt": "bound\n", "data/secret.key": "hidden\n",
                                              ".dockerignore": "**/*.key\n"}, (
            f"FROM dybase\nADD --checksum=sha256:{digest} {url} /web/\n"
            "RUN --mount=type=bind,source=data,target=/mnt/data cat /mnt/data/x.txt > /from-bind && "
            "ls /mnt/data > /bind-list\n"
            "RUN --mount=type=bind,source=data,target=/mnt/rw,rw touch /mnt/rw/scratch && ls /mnt/rw > /rw-list\n"))
        build(root, ctx, "-t", "web:1")
        files = tree(root, "web:1")
        assert files["web/remote.txt"][1] == 0o600 and "from-bind" in files
        assert not any(p.startswith("mnt/") for p in files) and not (ctx / "data" / "scratch").exists()
        out = run_dockyard(root, "run", "--rm", "--network", "none", "web:1", "cat", "/web/remote.txt", "/from-bind",
                           "/bind-list", "/rw-list")
        assert out.stdout == "from the web\nbound\nx.txt\nscratch\nx.txt\n"  # ignored files never show
        (ctx / "Dockerfile").write_text(f"FROM dybase\nADD --checksum=sha256:{'0' * 64} {url} /web/\n")
        bad = build(root, ctx, check=False)
        assert bad.returncode == 1 and "digest mismatch" in bad.stderr
    finally:
        server.shutdown()
        server.server_close()


def test_ctrl_c_stops_the_build_and_cleans_up(root, tmp_path):
    import signal
    import subprocess
    import time
    from tests.e2e.node_build_support import DOCKYARD, CGROUP_PARENT
    ctx = make_context(tmp_path, {}, "FROM dybase\nRUN echo started; sleep 60\n")
    env = dict(os.environ, DOCKYARD_CGROUP_PARENT=CGROUP_PARENT)
    proc = subprocess.Popen([str(DOCKYARD), "--root", str(root), "build", "--progress", "plain", "--network", "none",
                             "-t", "interrupted:1", str(ctx)], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL, env=env, text=True)
    deadline = time.monotonic() + 30
    for line in proc.stderr:
        if "started" in line or time.monotonic() > deadline:
            break
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    code = proc.wait(timeout=30)
    assert code == 130 and time.monotonic() - started < 15
    assert leftovers(root) == []
    assert run_dockyard(root, "inspect", "interrupted:1").returncode != 0


def test_large_context_builds_in_bounded_memory(root, tmp_path):
    import subprocess
    import sys
    from tests.e2e.node_build_support import DOCKYARD
    size = 128 << 20
    ctx = make_context(tmp_path, {}, "FROM dybase\nCOPY big.bin /big.bin\n")
    with open(ctx / "big.bin", "wb") as f:  # sparse on disk, every byte read and copied
        f.truncate(size)
    # A wrapper process of its own waits for the build, so its RUSAGE_CHILDREN is the build's
    # alone: this test process's children so far (servers, other tools) may have been larger.
    measure = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], stdin=subprocess.DEVNULL); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)")
    result = subprocess.run([sys.executable, "-c", measure, str(DOCKYARD), "--root", str(root), "build", "-q",
                             "-t", "big:1", str(ctx)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    peak_kib = int(result.stdout.strip().splitlines()[-1])
    assert peak_kib < 100 * 1024, f"peak RSS {peak_kib} KiB for a {size >> 20} MiB context"
    assert json.loads(run_dockyard(root, "inspect", "big:1").stdout)[0]["Size"] > size
    assert run_dockyard(root, "rmi", "big:1").returncode == 0
