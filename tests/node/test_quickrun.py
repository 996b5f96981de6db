"""`run` without argparse: the hand parser gives argparse's namespace or steps aside."""
from __future__ import annotations

import subprocess
import sys

import pytest

from node.__main__ import build_parser
from node.cli.quickrun import run_args

IMG = "127.0.0.1:5000/bench/busybox:1"

ACCEPTED = [
    ["run", IMG], ["run", IMG, "true"], ["run", "--rm", "--network", "none", IMG, "true"],
    ["--root", "/r", "run", "--rm", "--network", "none", IMG, "/bin/true"], ["--root=/r", "--debug", "run", IMG],
    ["run", "-d", "--name", "web", "-p", "8080:80", "-p", "127.0.0.1:8443:443/tcp", IMG, "httpd", "-f"],
    ["run", "-it", IMG, "sh"], ["run", "-ti", "--rm", IMG], ["run", "-dit", IMG], ["run", "-i", "-t", IMG],
    ["run", "-e", "A=1", "--env", "B", "--env=C=3", "-l", "k=v", "--label", "x", IMG],
    ["run", "--net", "host", IMG], ["run", "--network=bridge", IMG], ["run", "--net=none", IMG],
    ["run", "--pids-limit", "5", "--stop-timeout", "7", "--health-retries", " 3 ", IMG],
    ["run", "--runtime", "runc", IMG], ["run", "--runtime=crun", IMG], ["run", "-h", "box", "-w", "/tmp", IMG],
    ["run", "-v", "/a:/b:ro", "--volume", "v:/c", "--mount", "type=tmpfs,target=/t", "--tmpfs", "/x", IMG],
    ["run", "--name", "", IMG], ["run", "--entrypoint=", IMG], ["run", "--detach-keys", "ctrl-a", IMG],
    ["run", "--privileged", "--read-only", "--init", "-P", "--no-healthcheck", IMG],
    ["run", "--cap-add", "NET_ADMIN", "--cap-drop=ALL", "--security-opt", "seccomp=unconfined", IMG],
    ["run", "--restart", "always", "-m", "64m", "--cpus", "0.5", "--shm-size", "1m", IMG],
    ["run", "--name", "a", "--name", "b", IMG], ["run", "--rm", "--rm", IMG],
    ["run", IMG, "--rm"], ["run", IMG, "-x"], ["run", IMG, "sh", "-c", "echo -- $A"], ["run", IMG, "-"],
    ["run", "--dns-opt", "ndots:2", "--dns-option", "x", "--add-host", "h:1.2.3.4", IMG],
    ["run", "--ulimit", "nofile=1:2", "--sysctl", "net.ipv4.ip_forward=1", "--group-add", "10", IMG],
]

REFUSED = [
    ["run"], ["run", "--rm"], ["run", "--help"], ["run", "--help", IMG], ["run", "--rm", "--", IMG],
    ["run", IMG, "--", "true"], ["run", IMG, "sh", "--"], ["run", "-", IMG], ["run", "--bogus", IMG],
    ["run", "--rmx", IMG], ["run", "--netw", "none", IMG], ["run", "-eA=1", IMG], ["run", "-e", "-A", IMG],
    ["run", "-e"], ["run", "--name", "--rm", IMG], ["run", "--rm=1", IMG], ["run", "--pids-limit", "x", IMG],
    ["run", "--pids-limit", "-1", IMG], ["run", "--runtime", "kata", IMG], ["run", "--runtime=kata", IMG],
    ["run", "-itp", "80:80", IMG], ["run", "-iX", IMG], ["run", "--sig-proxy", IMG], ["run", "--sig-proxy=false", IMG],
    ["run", "--root", "/r", IMG], ["--root", "run", IMG], ["--root"], ["--ro", "/r", "run", IMG],
    ["-v"], ["--help"], ["create", IMG], ["ps"], ["runx", IMG], [], ["--root", "-x", "run", IMG],
]


def _parsed(argv):
    args = vars(build_parser().parse_args(argv))
    return args, args.pop("func")


@pytest.mark.parametrize("argv", ACCEPTED, ids=" ".join)
def test_accepted_arguments_give_argparse_namespace(argv, monkeypatch):
    monkeypatch.setenv("DOCKYARD_ROOT", "/from-env")
    quick = run_args(argv)
    assert quick is not None
    fields = vars(quick)
    func = fields.pop("func")
    expected, _ = _parsed(argv)
    assert fields == expected
    from node.cli.runflags import run_options
    assert vars(run_options(quick)) == vars(run_options(build_parser().parse_args(argv)))
    assert callable(func)


@pytest.mark.parametrize("argv", REFUSED, ids=lambda a: " ".join(a) or "(none)")
def test_anything_else_is_left_to_argparse(argv):
    assert run_args(argv) is None


def test_lists_are_fresh_per_parse():
    first = run_args(["run", "-e", "A=1", IMG])
    second = run_args(["run", IMG])
    assert first.env == ["A=1"] and second.env == [] and second.publish == []


def test_handler_is_cmd_run_with_engine_errors(monkeypatch):
    import node.cli.containers as containers
    from node.cli.common import CliError
    from node.engine import EngineError

    def failing(args):
        raise EngineError("no such image", 125)

    monkeypatch.setattr(containers, "cmd_run", failing)
    with pytest.raises(CliError) as caught:
        run_args(["run", IMG]).func(None)
    assert caught.value.exit_code == 125


def test_run_imports_no_argparse(tmp_path):
    """A `run` whose image is missing fails before anything runs: argparse stays out of it."""
    code = ("import sys\n"
            "from node.__main__ import main\n"
            "import node.cli.containers as c\n"
            "def missing(args):\n"
            "    raise c.CliError('no image', 125)\n"
            "c._image = missing\n"
            f"rc = main(['--root', {str(tmp_path)!r}, 'run', '--rm', '--network', 'none', 'img', 'true'])\n"
            "print(rc, sorted({'argparse', 'gettext'} & set(sys.modules)), file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stderr.strip().splitlines()[-1] == "125 []"
