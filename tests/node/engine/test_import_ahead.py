"""monitor._import_ahead: on a bridge network, the modules the rest of the run path needs are
imported by a thread while prepare waits on the kernel; never when prepare forks (userns) or
when there is nothing to overlap (none, host)."""
from __future__ import annotations

import subprocess
import sys
import textwrap

PROBE = textwrap.dedent("""
    import sys
    from types import SimpleNamespace as NS
    from node.engine import monitor

    def container(mode, ports=None, mappings=None):
        hc = NS(network_mode=mode, runtime="", port_bindings=ports or [], publish_all_ports=False)
        return NS(host_config=hc, spec=NS(id_mappings=mappings))

    assert monitor._import_ahead(container("none")) is None
    assert monitor._import_ahead(container("host")) is None
    assert monitor._import_ahead(container("bridge", mappings=[{"size": 1}])) is None
    assert "node.network.api" not in sys.modules and "node.network.userproxy" not in sys.modules
    ahead = monitor._import_ahead(container("bridge", ports=["8080:80"]))
    assert ahead is not None and ahead.daemon
    ahead.join()
    for name in ("node.network.api", "node.network.userproxy", "node.runtime.builtin",
                 "node.runtime.init", "node.runtime.seccomp", "node.engine.etcfiles"):
        assert name in sys.modules, name
    assert monitor._import_ahead(container("bridge", ports=["8080:80"])) is None  # all there
    print("ok")
""")


def test_import_ahead_only_where_prepare_waits_and_never_beside_a_fork():
    # a fresh interpreter: this one has imported everything already
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
