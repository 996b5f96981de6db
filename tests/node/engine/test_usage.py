"""`rmi` asks the engine which images containers use; when a record cannot be read nobody can
tell, and rmi must refuse instead of taking "not in use" for an answer (issue #12)."""
from __future__ import annotations

import json

import pytest

from node.cli.common import CliError
from node.cli.images import _in_use
from node.engine import EngineError
from node.engine.usage import images_in_use

IMAGE = "sha256:" + "a" * 64


def _record(root, cid: str, doc) -> None:
    d = root / "containers" / cid
    d.mkdir(parents=True)
    (d / "container.json").write_text(doc if isinstance(doc, str) else json.dumps(doc))


def test_images_of_every_container(tmp_path):
    _record(tmp_path, "1" * 64, {"Id": "1" * 64, "Image": IMAGE, "Name": "a"})
    assert images_in_use(tmp_path) == {IMAGE}
    assert images_in_use(tmp_path / "nothing-here") == set()


@pytest.mark.parametrize("broken", ["{not json", None])
def test_an_unreadable_record_makes_rmi_refuse(tmp_path, broken):
    _record(tmp_path, "1" * 64, {"Id": "1" * 64, "Image": IMAGE, "Name": "a"})
    if broken is None:
        (tmp_path / "containers" / ("2" * 64)).mkdir()  # a record without its container.json
    else:
        _record(tmp_path, "2" * 64, broken)
    with pytest.raises(EngineError, match="cannot tell"):
        images_in_use(tmp_path)
    with pytest.raises(CliError, match="refusing to remove images"):
        _in_use(str(tmp_path))
