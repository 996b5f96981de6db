"""deploy/ for scale-out: the Kubernetes manifests, the compose file, nginx and systemd units
describe a registry that would start (settings the config loader accepts, probes, secrets)."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

from registry.config import load_config
from registry.storage.s3_settings import parse_s3_settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _k8s() -> dict[str, dict]:
    docs = [d for d in yaml.safe_load_all((DEPLOY / "kubernetes" / "registry.yaml").read_text()) if d]
    return {d["kind"]: d for d in docs}


def test_kubernetes_manifests(tmp_path):
    k = _k8s()
    assert set(k) == {"ConfigMap", "Job", "Deployment", "Service"}
    # The ConfigMap's registry.yml plus the Secret-fed environment is a valid config.
    cfg_file = tmp_path / "registry.yml"
    cfg_file.write_text(k["ConfigMap"]["data"]["registry.yml"])
    pod = k["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert all("secretKeyRef" in e["valueFrom"] for e in env.values())   # no secret in the manifest
    fake = {name: "postgresql+asyncpg://u:p@db/x" if "DATABASE" in name else "value" for name in env}
    cfg = load_config(str(cfg_file), environ=fake)
    assert cfg.auto_migrate is False and cfg.storage["driver"] == "s3"
    assert parse_s3_settings(cfg.storage).bucket == "dockyard"
    assert container["args"][0] == "serve" and container["readinessProbe"]["httpGet"]["path"] == "/v2/"
    assert k["Deployment"]["spec"]["replicas"] >= 2
    assert k["Job"]["spec"]["template"]["spec"]["containers"][0]["args"][0] == "migrate"
    # The Service selects the Deployment's pods, without session affinity.
    labels = k["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert k["Deployment"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert k["Service"]["spec"]["selector"].items() <= labels.items()
    assert "sessionAffinity" not in k["Service"]["spec"]
    mounts = {m["name"] for m in container["volumeMounts"]}
    assert mounts == {v["name"] for v in pod["volumes"]}


def test_compose_scale_and_nginx():
    compose = yaml.safe_load((DEPLOY / "compose.scale.yml").read_text())
    services = compose["services"]
    replicas = sorted(s for s in services if re.fullmatch(r"registry-\d+", s))
    assert len(replicas) == 3 and {"postgres", "seaweedfs", "migrate", "nginx"} <= set(services)
    for name in replicas:
        cfg = load_config(environ=services[name]["environment"])
        assert cfg.auto_migrate is False and cfg.database_url.startswith("postgresql+asyncpg://")
        s3 = parse_s3_settings(cfg.storage)
        assert s3.endpoint == "http://seaweedfs:8333" and s3.redirect is False
    assert services["migrate"]["command"] == ["migrate"]
    nginx = (DEPLOY / "scale" / "nginx.conf").read_text()
    upstreams = re.findall(r"server (registry-\d+):5000", nginx)
    assert upstreams == replicas
    for directive in ("proxy_request_buffering off", "client_max_body_size 0", "proxy_next_upstream error timeout"):
        assert directive in nginx
    assert "ip_hash" not in nginx and "sticky" not in nginx


def test_systemd_replica_units():
    unit = (DEPLOY / "dockyard-registry@.service").read_text()
    assert "ExecStart=/opt/dockyard/venv/bin/dockyard-registry serve --config /etc/dockyard/registry.yml" in unit
    env = dict(re.findall(r"^Environment=(DOCKYARD_REGISTRY_\w+)=(.*)$", unit, re.M))
    cfg = load_config(environ={k: v.replace("%i", "5001") for k, v in env.items()})
    assert cfg.port == 5001 and cfg.auto_migrate is False
    migrate = (DEPLOY / "dockyard-registry-migrate.service").read_text()
    assert "dockyard-registry migrate --config /etc/dockyard/registry.yml" in migrate
