"""Config changes as docker makes them: ENTRYPOINT vs inherited CMD, EXPOSE ranges, HEALTHCHECK
durations, history times of a cached build, BuildKit's history text."""
from __future__ import annotations

import pytest

from node.build.dockerfile import DockerfileError, parse
from node.build.image import StageImage, config_json, fill_times
from node.build.instructions import interpret_all
from node.build.metadata import Applier, exposed_ports, go_list, parse_duration


def apply(text: str, config: dict | None = None) -> tuple[StageImage, list[str]]:
    image = StageImage(config=dict(config or {"Env": ["PATH=/bin"]}))
    applier = Applier(image, image.env)
    texts = [applier.apply(c) for c in interpret_all(parse(text))[1:]]
    return image, texts


def test_entrypoint_drops_an_inherited_cmd_but_not_its_own():
    image, _ = apply("FROM a\nENTRYPOINT [\"/e\"]\n", {"Cmd": ["base"]})
    assert image.config["Entrypoint"] == ["/e"] and "Cmd" not in image.config
    image, _ = apply("FROM a\nCMD [\"c\"]\nENTRYPOINT /e x\n", {"Cmd": ["base"]})
    assert image.config["Cmd"] == ["c"] and image.config["Entrypoint"] == ["/bin/sh", "-c", "/e x"]


def test_shell_form_uses_shell_and_history_text():
    image, texts = apply("FROM a\nSHELL [\"/bin/bash\", \"-c\"]\nCMD echo $HOME\nENV A=1 B=\"two words\"\n")
    assert image.config["Cmd"] == ["/bin/bash", "-c", "echo $HOME"]
    assert texts == ['SHELL ["/bin/bash" "-c"]', 'CMD ["/bin/bash" "-c" "echo $HOME"]', "ENV A=1 B=two words"]
    assert image.env() == {"PATH": "/bin", "A": "1", "B": "two words"}


def test_labels_ports_volumes_user_signal_healthcheck():
    image, _ = apply("FROM a\nENV P=8080\nEXPOSE $P 53/udp 7000-7001/TCP\nLABEL x=1 \"y z\"=2\nVOLUME /v [\"/w\"]\n"
                     "VOLUME [\"/j\"]\nUSER app:staff\nSTOPSIGNAL SIGINT\n"
                     "HEALTHCHECK --interval=1m30s --timeout=500ms --retries=2 CMD curl -f x\n")
    cfg = image.config
    assert cfg["ExposedPorts"] == {"8080/tcp": {}, "53/udp": {}, "7000/tcp": {}, "7001/tcp": {}}
    assert cfg["Labels"] == {"x": "1", "y z": "2"} and cfg["User"] == "app:staff" and cfg["StopSignal"] == "SIGINT"
    assert set(cfg["Volumes"]) == {"/v", "[/w]", "/j"}  # shell form: quotes removed, as BuildKit does
    assert cfg["Healthcheck"] == {"Test": ["CMD-SHELL", "curl -f x"], "Interval": 90_000_000_000,
                                  "Timeout": 500_000_000, "Retries": 2}


def test_durations_and_ports():
    assert parse_duration("1h2m3s") == 3_723_000_000_000 and parse_duration("0") == 0
    with pytest.raises(ValueError):
        parse_duration("5 minutes")
    with pytest.raises(ValueError):
        exposed_ports(["80/icmp"])
    assert go_list(["a b", "c"]) == '["a b" "c"]'


def test_bad_expose_is_a_dockerfile_error():
    with pytest.raises(DockerfileError, match="Dockerfile:2: invalid containerPort"):
        apply("FROM a\nEXPOSE abc\n")


def test_history_times_for_a_cached_build_are_stable():
    history = [{"created": None}, {"created": "T1"}, {"created": None}, {"created": None}, {"created": "T2"},
               {"created": None}]
    fill_times(history, "NOW")
    assert [h["created"] for h in history] == ["T1", "T1", "T2", "T2", "T2", "T2"]
    empty = [{"created": None}]
    fill_times(empty, "NOW")
    assert empty[0]["created"] == "NOW"


def test_config_is_deterministic_and_omits_unset_fields():
    image = StageImage(config={"Env": ["A=1"], "Cmd": ["x"], "Labels": {}, "User": ""})
    one, two = config_json(image, "2023-11-14T22:13:20Z"), config_json(image.clone(), "2023-11-14T22:13:20Z")
    assert one == two
    assert b'"Labels"' not in one and b'"User"' not in one and b'"created":"2023-11-14T22:13:20Z"' in one
