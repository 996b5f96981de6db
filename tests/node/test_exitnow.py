"""The `dockyard` command leaves at the end of main() (node/cli/exitnow.py), with its output and
its status intact, and only when the interpreter's exit has nothing left to do."""
from __future__ import annotations

import subprocess
import sys

import pytest


def _as_command(tmp_path, argv, before="", after="print('main returned')"):
    """Run main() as the console script does (no argv: sys.argv), with output to pipes."""
    code = ("import sys\n"
            f"{before}\n"
            f"sys.argv = ['dockyard', '--root', {str(tmp_path)!r}, *{argv!r}]\n"
            "from node.__main__ import main\n"
            "rc = main()\n"
            f"{after}\n"
            "sys.exit(rc)\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_the_command_ends_in_main_with_its_output_flushed(tmp_path):
    proc = _as_command(tmp_path, ["ps", "-a", "--format", "{{.ID}}"] + ["--filter", "name=x"] * 3)
    assert proc.returncode == 0
    assert "main returned" not in proc.stdout  # left at the end of main()
    proc = _as_command(tmp_path, ["images"])
    assert proc.stdout.splitlines()[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert "main returned" not in proc.stdout


def test_failure_status_and_message_are_kept(tmp_path):
    proc = _as_command(tmp_path, ["rm", "nosuch"])
    assert proc.returncode == 1
    assert "main returned" not in proc.stdout
    assert "nosuch" in proc.stderr


def test_large_output_is_all_written(tmp_path):
    big = "x" * 300_000
    proc = _as_command(tmp_path, ["ps"], before=(
        "import node.cli.containers as c\n"
        "c.ps_handler = lambda args: print('x' * 300_000) or 7\n"
        "import node.cli.quickargs as q\n"
        "q._handler = lambda ps: c.ps_handler\n"))
    assert proc.returncode == 7
    assert proc.stdout == big + "\n"


@pytest.mark.parametrize("before", [
    "import atexit\natexit.register(print, 'atexit ran')",
    "import threading, time\nthreading.Thread(target=time.sleep, args=(0.3,)).start()",
], ids=["atexit", "non-daemon thread"])
def test_pending_exit_work_keeps_the_normal_exit(tmp_path, before):
    proc = _as_command(tmp_path, ["ps"], before=before)
    assert proc.returncode == 0
    assert "main returned" in proc.stdout
    if "atexit" in before:
        assert proc.stdout.rstrip().endswith("atexit ran")


def test_a_profiler_still_writes_its_report(tmp_path):
    proc = _as_command(tmp_path, ["ps"], before="import cProfile\ncProfile.Profile().enable()")
    assert "main returned" in proc.stdout


def test_a_daemon_thread_does_not_hold_the_exit(tmp_path):
    proc = _as_command(tmp_path, ["ps"], before=(
        "import threading, time\nthreading.Thread(target=time.sleep, args=(30,), daemon=True).start()"))
    assert proc.returncode == 0
    assert "main returned" not in proc.stdout


def test_main_with_argv_returns_its_status(tmp_path):
    code = ("import sys\nfrom node.__main__ import main\n"
            f"print('status', main(['--root', {str(tmp_path)!r}, 'rm', 'nosuch']))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "status 1"


@pytest.mark.parametrize("code,status", [(0, 0), (3, 3), (125, 125), (256 + 5, 5), (-1, 255)])
def test_exit_status_is_what_sys_exit_would_give(code, status):
    for how in (f"from node.cli.exitnow import exit_now\nexit_now({code})\nraise SystemExit(99)",
                f"raise SystemExit({code})"):
        proc = subprocess.run([sys.executable, "-c", how], capture_output=True, timeout=60)
        assert proc.returncode == status, how


def test_the_command_collects_young_objects_less_often(tmp_path):
    """main() as the command raises the GC's young threshold; called with argv it leaves it."""
    from node.__main__ import GC_YOUNG_THRESHOLD
    show = ("import node.cli.containers as c, gc\n"
            "c.ps_handler = lambda args: print('threshold', gc.get_threshold()[0]) or 0\n"
            "import node.cli.quickargs as q\n"
            "q._handler = lambda ps: c.ps_handler\n")
    proc = _as_command(tmp_path, ["ps"], before=show)
    assert f"threshold {GC_YOUNG_THRESHOLD}" in proc.stdout
    code = (show + "import gc\nfrom node.__main__ import main\n"
            f"before = gc.get_threshold()[0]\nmain(['--root', {str(tmp_path)!r}, 'ps'])\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "threshold 700"
