"""The gc/retention/notifications sections: shapes from the issue, one-line errors, deprecations."""
from __future__ import annotations

import logging

import pytest

from registry.config import ConfigError, load_config
from registry.lifecycle.settings import glob_match, parse_lifecycle


def _load(tmp_path, text: str):
    path = tmp_path / "registry.yml"
    path.write_text(text)
    return load_config(str(path), environ={})


def test_the_issue_shape_parses(tmp_path):
    cfg = _load(tmp_path, """
gc:
  enabled: true
  review_delay: 24h
  untagged_after: 0
retention:
  interval: 1h
  rules:
    - repositories: "team/*"
      keep_last: 10
      keep_tags: ["latest", "v*"]
      older_than: 30d
notifications:
  endpoints:
    - name: ci
      url: http://127.0.0.1:9000/events
      headers: {Authorization: ["Bearer x"]}
      actions: [push, delete]
      repositories: "team/*"
      timeout: 5s
log_format: json
""")
    s = parse_lifecycle(cfg)
    assert (s.gc.enabled, s.gc.review_delay, s.gc.untagged_after) == (True, 86400, 0)
    rule = s.retention.rules[0]
    assert (rule.keep_last, rule.keep_tags, rule.older_than, s.retention.interval) == (10, ("latest", "v*"), 30 * 86400, 3600)
    ep = s.notifications.endpoints[0]
    assert ep.headers == {"Authorization": ["Bearer x"]} and ep.actions == {"push", "delete"} and ep.timeout == 5
    assert cfg.log_format == "json"


@pytest.mark.parametrize("text, message", [
    ("gc: {review_delay: soon}", "gc.review_delay"),
    ("gc: {grace: 1h}", "unknown key 'grace'"),
    ("retention: {rules: [{keep_last: 3}]}", "retention.rules[0].repositories"),
    ("retention: {rules: [{repositories: 'a/*', keep_last: -1}]}", "keep_last"),
    ("notifications: {endpoints: [{name: x, url: 'ftp://x'}]}", "notifications.endpoints[0].url"),
    ("notifications: {endpoints: [{name: x, url: 'http://a', actions: [pul]}]}", "'pul'"),
    ("log_format: xml", "log_format"),
])
def test_mistakes_are_one_line_errors(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")) as e:
        _load(tmp_path, text)
    assert "\n" not in str(e.value)


def test_old_keys_still_work_with_a_warning_naming_the_new(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        cfg = _load(tmp_path, "gc_grace: 2h\ngc_interval: 0\n")
    assert parse_lifecycle(cfg).gc.review_delay == 7200
    text = caplog.text
    assert "gc_grace is deprecated" in text and "gc.review_delay" in text and "gc.enabled" in text


def test_globs():
    assert glob_match("team/*", "team/web") and not glob_match("team/*", "team/web/x")
    assert glob_match("team/**", "team/web/x") and glob_match("**", "a/b/c")
    assert not glob_match("team/*", "other/web")
