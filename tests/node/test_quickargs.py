"""`ps` and `images` without argparse, re or json: the hand parser gives argparse's namespace or
steps aside, and the hand-written stand-ins for re/json/oci.reference give the same results."""
from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys

import pytest

from node.__main__ import build_parser
from node.cli.quickargs import listing_args

ACCEPTED = [
    ["ps"], ["ps", "-a"], ["ps", "-aq"], ["ps", "-qa"], ["ps", "-alq"], ["ps", "--all", "--quiet"],
    ["ps", "--no-trunc"], ["ps", "--format", "json"], ["ps", "--format=json"], ["ps", "--format="],
    ["ps", "--format", ""], ["ps", "--format", "table {{.ID}}\t{{.Names}}"], ["ps", "--format", "a=b"],
    ["ps", "-f", "status=running"], ["ps", "-f", "name=x", "--filter", "label=a=b", "--filter=id=1"],
    ["ps", "--filter="], ["ps", "-n", "3"], ["ps", "-n", " 7 "], ["ps", "--last=2"], ["ps", "-n", "1", "-n", "4"],
    ["ps", "-l"], ["ps", "--latest", "-a", "-a"], ["ps", "--format", "x", "--format", "y"],
    ["container", "ls"], ["container", "ls", "-aq", "--no-trunc"],
    ["--root", "/r", "ps"], ["--root=/r", "--debug", "ps", "-q"], ["--root", "/a", "--root", "/b", "ps"],
    ["--debug", "container", "ls", "-f", "exited=0"],
    ["images"], ["images", "-a"], ["images", "-q"], ["images", "-aq"], ["images", "--digests"],
    ["images", "--no-trunc", "--quiet"], ["images", "--format", "{{.ID}}"], ["images", "--format={{.ID}}"],
    ["images", "-f", "dangling=true", "-f", "label=a"], ["images", "--filter=reference=x*"],
    ["image", "ls"], ["image", "ls", "-q", "--digests"], ["--root", "/r", "image", "ls", "--format", "json"],
]

REFUSED = [
    [], ["ps", "--help"], ["ps", "-h"], ["ps", "--no-tr"], ["ps", "--al"], ["ps", "extra"], ["ps", "--"],
    ["ps", "-"], ["ps", "-fname=x"], ["ps", "-f=name=x"], ["ps", "-n5"], ["ps", "-an", "5"], ["ps", "-n", "x"],
    ["ps", "-n", "-1"], ["ps", "-n"], ["ps", "--format"], ["ps", "--format", "-x"], ["ps", "--all=1"],
    ["ps", "--bogus"], ["ps", "-x"], ["ps", "-aQ"], ["ps", "--root", "/r"], ["ps", "--debug"],
    ["container", "list"], ["container"], ["container", "ls", "--digests"], ["images", "busybox"],
    ["images", "--last", "1"], ["image", "list"], ["image"], ["--ro", "/r", "ps"], ["--root"],
    ["--root", "-x", "ps"], ["-v"], ["--help", "ps"], ["run", "img"], ["pull", "x"], ["psx"],
]


@pytest.mark.parametrize("argv", ACCEPTED, ids=" ".join)
def test_accepted_arguments_give_argparse_namespace(argv, monkeypatch):
    monkeypatch.setenv("DOCKYARD_ROOT", "/from-env")
    quick = listing_args(argv)
    assert quick is not None
    assert vars(quick) == vars(build_parser().parse_args(argv))


@pytest.mark.parametrize("argv", REFUSED, ids=lambda a: " ".join(a) or "(none)")
def test_anything_else_is_left_to_argparse(argv):
    assert listing_args(argv) is None


def test_root_default_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("DOCKYARD_ROOT", raising=False)
    assert listing_args(["ps"]).root == build_parser().parse_args(["ps"]).root
    monkeypatch.setenv("DOCKYARD_ROOT", "/elsewhere")
    assert listing_args(["images"]).root == "/elsewhere"


def _container_record(root, cid: str, name: str) -> None:
    d = os.path.join(root, "containers", cid)
    os.makedirs(d)
    with open(os.path.join(d, "container.json"), "w") as f:
        json.dump({"Id": cid, "Name": name, "Created": "2026-01-02T03:04:05.123456Z", "Path": "sleep",
                   "Args": ["1 2"], "Image": "sha256:" + "a" * 64, "Config": {"Image": "img:1", "Labels": {}},
                   "HostConfig": {"NetworkMode": "none"}, "Mounts": []}, f)
    with open(os.path.join(d, "state.json"), "w") as f:
        json.dump({"Status": "exited", "ExitCode": 3, "FinishedAt": "2026-01-02T03:05:05.123456Z"}, f)


def _images_record(root) -> None:
    os.makedirs(os.path.join(root, "images"))
    rec = {"id": "sha256:" + "b" * 64, "repo_tags": ["127.0.0.1:5000/x/y:1"], "size": 1234567,
           "repo_digests": ["127.0.0.1:5000/x/y@sha256:" + "c" * 64], "created": "2024-01-01T00:00:00.123456789Z"}
    with open(os.path.join(root, "images", "images.json"), "w") as f:
        json.dump({"images": {rec["id"]: rec}}, f, indent=2)


@pytest.mark.parametrize("argv", [["ps", "-a"], ["images"]])
def test_listing_imports_none_of_the_heavy_modules(tmp_path, argv):
    root = str(tmp_path)
    _container_record(root, "d" * 64, "one")
    _images_record(root)
    code = ("import sys\n"
            "from node.__main__ import main\n"
            f"rc = main(['--root', {root!r}, *{argv!r}])\n"
            "heavy = {'argparse', 're', 'json', 'enum', 'contextlib', 'collections', 'datetime', 'typing',"
            " 'pathlib', 'oci.reference', 'gettext', 'locale'}\n"
            "print(rc, sorted(heavy & set(sys.modules)), file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stderr.strip() == "0 []"
    assert len(proc.stdout.splitlines()) == 2  # the header and the one row


def test_familiar_name_is_what_oci_reference_gives():
    from node.cli.images import familiar_name
    from oci.reference import Reference
    hexd = "sha256:" + "0123456789abcdef" * 4
    samples = [f"{name}@{hexd}" for name in (
        "127.0.0.1:5000/x", "127.0.0.1:5000/bench/listed", "reg.example.com/a/b-c/d__e/f.g", "localhost/x",
        "localhost:5000/x", "docker.io/library/busybox", "index.docker.io/x/y", "busybox", "a.b/c---d",
        "Reg.Example.com/x", "host:/x", "host:5x/x", "-a.b/x", "a-.b/x", "a..b/x", "a.b/X", "a.b/x_", "a.b/x___y",
        "a.b/x._y", "a.b/x//y", "a.b/", "a.b/x:tag", "a.b:1/x:tag", "[::1]:5000/x", "a.b/x\n", "a.b/\u00e9",
        "a.b/x@y", "a.b:١/x", "a.b/" + "x" * 256)] + ["a.b/x@sha256:" + "A" * 64, "a.b/x@sha256:abc",
                                                    "a.b/x@sha512:" + "0" * 128, "a.b/x"]
    rng = random.Random(18)
    alphabet = "ab0.:_-/@A"
    for _ in range(3000):
        name = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12)))
        samples.append(rng.choice(["r.io/", "h:1/", ""]) + name + "@" + hexd)
    for text in samples:
        try:
            want = Reference.parse(text).familiar().rsplit("@", 1)[0]
        except ValueError as e:
            with pytest.raises(type(e)):
                familiar_name(text)
        else:
            assert familiar_name(text) == want, text


def test_micro_fraction_is_the_regex_substitution():
    from node.cli.imageinfo import micro_fraction
    rng = random.Random(18)
    samples = ["2024-01-01T00:00:00Z", "2024-01-01T00:00:00.123456789Z", "x.1234567.1234567", "..1234567",
               ".\u0661\u0662\u0663\u0664\u0665\u0666\u0667", ".123456", "a.b", ""]
    samples += ["".join(rng.choice(".1234567x\u0663") for _ in range(rng.randint(0, 20))) for _ in range(3000)]
    for text in samples:
        assert micro_fraction(text) == re.sub(r"(\.\d{6})\d+", r"\1", text), text


def test_template_actions_are_what_the_regex_finds():
    from node.cli import gotemplate
    rng = random.Random(18)
    samples = ["{{.ID}}\t{{.Names}}", "{{- .A -}} x {{-}} {{}} {{-.B-}}", "{{{.A}}}", "{{ .A }", "}}{{", "{{-}}}"]
    samples += ["".join(rng.choice(["{{", "}}", "-", " ", "a", "{", "}", "\n"]) for _ in range(rng.randint(0, 15)))
                for _ in range(3000)]
    pattern = re.compile(gotemplate._ACTION_PATTERN, re.S)
    for text in samples:
        want = [(m.start(), m.end(), m.group(1), m.group(2), m.group(3)) for m in pattern.finditer(text)]
        assert list(gotemplate._actions(text)) == want, text


def test_plain_field_tokens_are_what_the_regex_reads():
    from node.cli import gotemplate
    token = re.compile(gotemplate._TOKEN_PATTERN)
    rng = random.Random(18)
    samples = [".", ".ID", ".Config.Labels", "._x.y_1", "..", ".1", ".a-b", ".é", "json .", "ID", ". ID"]
    samples += ["." + "".join(rng.choice("aZ_1.-é ") for _ in range(rng.randint(0, 6))) for _ in range(2000)]
    for text in samples:
        if gotemplate._plain_field(text):
            m = token.match(text)
            assert m and m.end() == len(text) and m.lastgroup == "field", text


def test_record_json_reader_is_json_loads():
    from node.engine.records import loads_json
    from node.images.records import _loads
    docs = [b'{"a": [1, 2.5, "\\u00e9", null, true]}', b'[1]', "{\"\u00e9\": 1}".encode(), b'{"a": 1} ',
            b'{"a": NaN, "b": -Infinity}', b'{"a": 1}\n', b' {"a": 1}', "\ufeff{}".encode(), '{"a": 1}'.encode("utf-16"),
            '{"a": 1}'.encode("utf-16-le"), b'{"a": 1', b'{"a": 1} x', b'{}', b'[]', b'{', b'\xff\xfe', b'{"\xff": 1}',
            b'{"a": "\\ud800"}', b'{"a": 1e400}', b'{"a": 12345678901234567890}']
    for loader in (loads_json, _loads):
        for data in docs:
            try:
                want = json.loads(data)
            except ValueError as e:
                with pytest.raises(type(e)) as got:
                    loader(data)
                assert str(got.value) == str(e), data
            else:
                got = loader(data)
                assert json.dumps(got) == json.dumps(want) and type(got) is type(want), data
