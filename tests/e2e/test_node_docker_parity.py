"""Side by side with docker on the same image: sizes in `images`, compression on push of an image
loaded from `docker save`, and output into a pipe that closes early (`| head`)."""
from __future__ import annotations

import json
import subprocess
import uuid

import pytest

from tests import images
from tests.e2e.node_images_support import DOCKYARD, dockyard, load_docker_built_busybox
from tests.helpers import need_tool

pytestmark = [pytest.mark.e2e, pytest.mark.docker, pytest.mark.root, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def loaded(dockerd, tmp_path_factory):
    """A docker-built busybox image, `docker save`d and `dockyard load`ed into a fresh root."""
    work = tmp_path_factory.mktemp("parity")
    root, imgs = load_docker_built_busybox(dockerd, work, f"parity{uuid.uuid4().hex[:6]}")
    yield root, imgs
    dockerd.run("rmi", "-f", *imgs.tags, check=False)


def _dockyard_row(root, ref: str) -> dict:
    r = dockyard(root, "images", "--format", "json")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    repo, tag = ref.rsplit(":", 1)
    return next(row for row in rows if row["Repository"] == repo and row["Tag"] == tag)


def test_images_size_is_dockers(dockerd, loaded):
    root, imgs = loaded
    theirs = dockerd.run("images", "--format", "{{.Size}}", imgs.one).stdout.strip()
    assert _dockyard_row(root, imgs.one)["Size"] == theirs


def test_push_of_a_loaded_image_compresses_its_layers(dockerd, loaded, shared_dockyard_registry):
    need_tool("skopeo")
    root, imgs = loaded
    ref = f"{shared_dockyard_registry.host}/parity/{uuid.uuid4().hex[:8]}:1"
    assert dockyard(root, "tag", imgs.one, ref).returncode == 0
    r = dockyard(root, "push", ref)
    assert r.returncode == 0, r.stderr
    raw = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    manifest = json.loads(raw)
    assert all(layer["mediaType"].endswith("gzip") for layer in manifest["layers"]), manifest
    plain = sum(int(line) for line in subprocess.run(
        ["sh", "-c", f"find {root}/images/content/blobs -type f -size +100k -printf '%s\\n'"],
        capture_output=True, text=True, check=True).stdout.split())
    pushed = sum(layer["size"] for layer in manifest["layers"])
    assert pushed < plain / 1.5, (pushed, plain)
    # Docker pulls it as the same image (same config: same ID), and so does a second push.
    docker_id = dockerd.run("image", "inspect", "--format", "{{.Id}}", imgs.one).stdout.strip()
    dockerd.run("pull", ref)
    assert dockerd.run("image", "inspect", "--format", "{{.Id}}", ref).stdout.strip() == docker_id
    again = dockyard(root, "push", ref)
    assert again.returncode == 0 and "digest: " + json.loads(
        dockyard(root, "inspect", ref).stdout)[0]["RepoDigests"][-1].split("@")[1] in again.stdout
    dockerd.run("rmi", ref, check=False)


def test_output_into_a_closed_pipe_ends_quietly(loaded, shared_dockyard_registry, busybox_image_dir, tmp_path):
    root, imgs = loaded
    # More than a pipe buffer of output, so the write really meets the closed pipe.
    many = " ".join([imgs.one] * 100)
    r = subprocess.run(f"{DOCKYARD} --root {root} inspect {many} | head -n 1",
                       shell=True, capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "[" and r.stderr == "", r.stderr
    # A pull whose reader is gone before the first line still finishes the pull.
    ref = f"{shared_dockyard_registry.host}/parity/pipe{uuid.uuid4().hex[:6]}:1"
    images.push_image(busybox_image_dir, ref)
    fresh = tmp_path / "root"
    r = subprocess.run(f"{DOCKYARD} --root {fresh} pull {ref} | true; exit ${{PIPESTATUS[0]}}",
                       shell=True, executable="/bin/bash", capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert dockyard(fresh, "image", "inspect", ref).returncode == 0


PS_FORMAT = "{{.Names}}|{{.Image}}|{{.Command}}|{{.State}}|{{.Labels}}|{{.Label \"tier\"}}|{{.Ports}}|{{.Networks}}"


@pytest.fixture(scope="module")
def same_containers(dockerd, loaded):
    """The same three containers, made by docker and by dockyard from the same image."""
    root, imgs = loaded
    tag = uuid.uuid4().hex[:6]
    specs = [(f"up-{tag}", ["--label", "tier=web", "-d"], ["sleep", "300"]),
             (f"three-{tag}", ["--label", "tier=job"], ["sh", "-c", "exit 3"]),
             (f"zero-{tag}", [], ["true"])]
    for name, flags, cmd in specs:
        dockerd.run("run", "--name", name, "--network", "none", *flags, imgs.one, *cmd, check=False)
        r = dockyard(root, "run", "--name", name, "--network", "none", *flags, imgs.one, *cmd)
        assert r.returncode in (0, 3), r.stderr
    yield root, [s[0] for s in specs], tag
    names = [s[0] for s in specs]
    dockerd.run("rm", "-f", *names, check=False)
    dockyard(root, "rm", "-f", *names)


@pytest.mark.parametrize("filters", [[], ["--filter", "status=exited"], ["--filter", "label=tier"],
                                     ["--filter", "label=tier=job"], ["--filter", "exited=3"],
                                     ["--filter", "status=running", "--filter", "status=exited"],
                                     ["--filter", "ancestor=IMAGE"], ["--filter", "name=three-"]])
def test_ps_filter_and_format_give_dockers_rows(dockerd, loaded, same_containers, filters):
    root, names, tag = same_containers
    filters = [f.replace("IMAGE", loaded[1].one) for f in filters]
    argv = ["ps", "-a", *filters, "--format", PS_FORMAT]
    ours = sorted(l for l in dockyard(root, *argv).stdout.splitlines() if tag in l)
    theirs = sorted(l for l in dockerd.run(*argv).stdout.splitlines() if tag in l)
    assert ours == theirs and ours, (ours, theirs)


def test_ps_json_keys_and_table(dockerd, same_containers):
    root, names, tag = same_containers
    ours = [json.loads(l) for l in dockyard(root, "ps", "--format", "{{json .}}").stdout.splitlines()]
    theirs = [json.loads(l) for l in dockerd.run("ps", "--format", "{{json .}}").stdout.splitlines()]
    assert ours and theirs and sorted(ours[0]) == sorted(theirs[0]), json.dumps(theirs[0])
    table = dockyard(root, "ps", "-a", "--no-trunc", "--format", "table {{.ID}}\\t{{.Names}}").stdout.splitlines()
    assert table[0].split() == ["CONTAINER", "ID", "NAMES"] and all(len(l.split()[0]) == 64 for l in table[1:])
    r = dockyard(root, "ps", "--format", "{{if .Names}}x{{end}}")
    assert r.returncode == 125 and "not supported" in r.stderr


def test_images_filter_and_format(dockerd, loaded):
    root, imgs = loaded
    fmt = "{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}"
    ours = dockyard(root, "images", "--filter", f"reference={imgs.one.split(':')[0]}", "--format", fmt).stdout.split("\n")
    theirs = dockerd.run("images", "--filter", f"reference={imgs.one.split(':')[0]}", "--format", fmt).stdout.split("\n")
    assert ours[0] == theirs[0], (ours, theirs)
    assert dockyard(root, "images", "--filter", "dangling=true", "-q").stdout.strip() == ""
    bad = dockyard(root, "images", "--filter", "colour=red")
    assert bad.returncode == 125 and "invalid filter 'colour'" in bad.stderr


def test_history_is_dockers(dockerd, loaded):
    root, imgs = loaded
    fmt = "{{.CreatedBy}}|{{.Size}}|{{.Comment}}"
    ours = dockyard(root, "history", "--no-trunc", "--format", fmt, imgs.one)
    assert ours.returncode == 0, ours.stderr
    theirs = dockerd.run("history", "--no-trunc", "--format", fmt, imgs.one).stdout
    assert ours.stdout.splitlines() == theirs.splitlines()
    table = dockyard(root, "history", imgs.one).stdout.splitlines()
    assert table[0].split()[:4] == ["IMAGE", "CREATED", "CREATED", "BY"] and table[1].split()[0] != "<missing>"


def test_search_is_dockers(dockerd, shared_dockyard_registry, busybox_image_dir, tmp_path):
    host = shared_dockyard_registry.host
    term = f"srch{uuid.uuid4().hex[:6]}"
    images.push_image(busybox_image_dir, f"{host}/{term}/app:1")
    ours = dockyard(tmp_path / "root", "search", f"{host}/{term}")
    assert ours.returncode == 0, ours.stderr
    theirs = dockerd.run("search", f"{host}/{term}").stdout
    assert [l.split()[0] for l in ours.stdout.splitlines()] == [l.split()[0] for l in theirs.splitlines()]
    assert f"{term}/app" in ours.stdout
    r = dockyard(tmp_path / "root", "search", "127.0.0.1:1/x")
    assert r.returncode == 1 and r.stderr.strip() == "Error: cannot reach registry 127.0.0.1:1: connection refused"


def test_image_prune_removes_dangling_images_after_asking(shared_dockyard_registry, busybox_image_dir, tmp_path):
    ref = f"{shared_dockyard_registry.host}/parity/prune{uuid.uuid4().hex[:6]}"
    digest = images.push_image(busybox_image_dir, ref + ":1")
    root = tmp_path / "root"
    assert dockyard(root, "pull", f"{ref}@{digest}").returncode == 0
    assert dockyard(root, "images", "-q", "--filter", "dangling=true").stdout.strip()
    kept = dockyard(root, "image", "prune", input="n\n")
    assert kept.returncode == 0 and "Are you sure you want to continue? [y/N]" in kept.stderr
    assert dockyard(root, "images", "-q").stdout.strip()
    gone = dockyard(root, "image", "prune", "-f")
    assert gone.returncode == 0 and "deleted: sha256:" in gone.stdout, gone.stdout
    assert "Total reclaimed space: " in gone.stdout and "Total reclaimed space: 0B" not in gone.stdout
    assert dockyard(root, "images", "-q").stdout.strip() == ""


def test_completion_scripts(tmp_path):
    for shell in ("bash", "zsh"):
        r = dockyard(tmp_path / "root", "completion", shell)
        assert r.returncode == 0 and "complete -F _dockyard dockyard" in r.stdout
    script = dockyard(tmp_path / "root", "completion", "bash").stdout
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0
    # Completing `dockyard run --la` offers --label (the flags come from the real parser).
    probe = script + '\nCOMP_WORDS=(dockyard run --la); COMP_CWORD=2; _dockyard; echo "${COMPREPLY[@]}"\n'
    out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True).stdout
    assert "--label" in out.split() and "--label-file" in out.split()
