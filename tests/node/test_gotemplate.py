"""The Go-template subset behind `ps`/`images`/`inspect --format`: what docker users write."""
from __future__ import annotations

import pytest

from node.cli.gotemplate import TemplateError, format_rows, render

DOC = {"Name": "/web", "State": {"Status": "running", "Running": True, "Pid": 42},
       "Config": {"Cmd": ["sleep", "30"], "Labels": {"a.b": "x y"}, "Env": None},
       "Mounts": [{"Destination": "/data"}]}


@pytest.mark.parametrize("template,expected", [
    ("{{.Name}}", "/web"),
    ("{{.State.Status}} {{.State.Pid}}", "running 42"),
    ("{{.State.Running}}", "true"),                        # Go's bool, not Python's
    ("{{json .Config.Cmd}}", '["sleep","30"]'),
    ("{{json .State}}", '{"Status":"running","Running":true,"Pid":42}'),
    ('{{index .Config.Labels "a.b"}}', "x y"),
    ('{{index .Config.Labels "missing"}}', ""),             # a map of strings gives ""
    ("{{index .Mounts 0 | json}}", '{"Destination":"/data"}'),
    ("{{.Config.Env}}", "<no value>"),
    ("{{.Name | upper}}", "/WEB"),
    ("{{.Config.Labels}}", "map[a.b:x y]"),
    ("{{.Config.Cmd}}", "[sleep 30]"),
    ("id:\\t{{- .State.Pid -}}\\n", "id:42"),
])
def test_render(template, expected):
    assert render(template, DOC) == expected


@pytest.mark.parametrize("template,message", [
    ("{{.Nope}}", "can't evaluate field Nope"),
    ("{{range .Mounts}}{{end}}", "not supported"),
    ("{{nofunc .Name}}", 'function "nofunc" not defined'),
    ("{{index .Mounts 3}}", "index out of range"),
])
def test_refused_templates_say_why(template, message):
    with pytest.raises(TemplateError, match=message):
        render(template, DOC)


def test_table_aligns_as_docker_tabwriter():
    rows = [{"ID": "abc", "Names": "web"}, {"ID": "abcdef012345", "Names": "db"}]
    lines = format_rows("table {{.ID}}\t{{.Names}}", rows, {"ID": "CONTAINER ID", "Names": "NAMES"}, "")
    assert lines == ["CONTAINER ID   NAMES", "abc            web", "abcdef012345   db"]
