"""node/engine/settings.py: the node's settings file, parsed and validated."""
from __future__ import annotations

import pytest

from node.engine import EngineError, settings
from node.engine.create import _pids_limit


def test_missing_file_means_defaults(tmp_path):
    assert settings.load(tmp_path).default_pids_limit == settings.DEFAULT_PIDS_LIMIT


@pytest.mark.parametrize("text, message", [
    ("{", "not JSON"), ("[]", "JSON object"), ('{"pids": 1}', "unknown setting 'pids'"),
    ('{"default-pids-limit": -2}', "default-pids-limit"), ('{"default-pids-limit": true}', "default-pids-limit"),
])
def test_bad_files_are_one_clear_error(tmp_path, text, message):
    (tmp_path / "node.json").write_text(text)
    with pytest.raises(EngineError) as e:
        settings.load(tmp_path)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_environment_names_another_file(tmp_path, monkeypatch):
    other = tmp_path / "elsewhere.json"
    other.write_text('{"default-pids-limit": 0}')
    monkeypatch.setenv("DOCKYARD_NODE_CONFIG", str(other))
    assert settings.load(tmp_path / "root").default_pids_limit == 0


@pytest.mark.parametrize("given, default, limit", [(None, 4096, 4096), (12, 4096, 12), (-1, 4096, 0),
                                                   (0, 4096, 0), (None, -1, 0), (None, 0, 0)])
def test_flag_beats_the_node_default(given, default, limit):
    assert _pids_limit(given, default) == limit
