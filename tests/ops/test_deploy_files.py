"""The deploy/ and config/ files parse and say what the daemon expects.

External checkers (hadolint, systemd-analyze, promtool, nginx, caddy) run
when installed and are skipped otherwise; the structural checks here run
everywhere.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from flowersec_tunnel import goflags
from flowersec_tunnel.metrics import Metrics

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
CONFIG = REPO / "config"
UNIT = DEPLOY / "systemd" / "flowersec-tunnel.service"
TLS_DROPIN = DEPLOY / "systemd" / "flowersec-tunnel.service.d" / "tls.conf"
ENV_EXAMPLE = CONFIG / "tunnel.env.example"
DEFAULT_MAX_CONNS = 12000
# The longest a SIGTERM drain may take before the daemon exits by itself.
DRAIN_BOUND_SECONDS = 10

UnitParser = Callable[[Path], list[tuple[str, str, str]]]
EnvParser = Callable[[Path], dict[str, str]]
SelfSigned = Callable[[Path, Path, str], None]


def _files(*suffixes: str) -> list[Path]:
    found = [
        p
        for root in (DEPLOY, CONFIG)
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name.endswith(suffixes)
    ]
    assert found, f"no {suffixes} files"
    return found


def _tool(name: str) -> str:
    """The checker on PATH or beside this interpreter (pip-installed ones)."""
    path = shutil.which(name) or shutil.which(
        name, path=str(Path(sys.executable).parent)
    )
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


def _run(argv: list[str], cwd: Path | None = None) -> str:
    done = subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, f"{argv[0]} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


@pytest.mark.parametrize("path", _files(".yaml", ".yml"), ids=lambda p: p.name)
def test_yaml_parses(path: Path, yaml: ModuleType) -> None:
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert documents and all(isinstance(d, dict) for d in documents)


@pytest.mark.parametrize("path", _files(".json"), ids=lambda p: p.name)
def test_json_parses(path: Path) -> None:
    assert isinstance(json.loads(path.read_text()), dict)


K8s = Callable[[str], list[dict[str, Any]]]


@pytest.fixture
def k8s(yaml: ModuleType) -> K8s:
    """Load the documents of one file under deploy/kubernetes."""

    def load(name: str) -> list[dict[str, Any]]:
        text = (DEPLOY / "kubernetes" / name).read_text()
        return [d for d in yaml.safe_load_all(text) if d]

    return load


def test_kustomization_lists_every_manifest(k8s: K8s) -> None:
    (kustomization,) = k8s("kustomization.yaml")
    listed = set(kustomization["resources"])
    present = {p.name for p in (DEPLOY / "kubernetes").glob("*.yaml")} - {
        "kustomization.yaml"
    }
    assert listed == present


def test_shards_differ_only_by_index() -> None:
    shard0 = (DEPLOY / "kubernetes" / "shard-0.yaml").read_text()
    shard1 = (DEPLOY / "kubernetes" / "shard-1.yaml").read_text()
    assert (
        shard0.replace("tunnel-0", "tunnel-1").replace("instance 0", "instance 1")
        == shard1
    )


def test_shard_is_one_pod_behind_its_own_service(k8s: K8s) -> None:
    deployment, service = k8s("shard-0.yaml")
    assert deployment["kind"] == "Deployment" and service["kind"] == "Service"
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"]["type"] == "Recreate"
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"] == labels
    assert service["spec"]["selector"] == labels
    assert "app.kubernetes.io/instance" in labels

    pod = spec["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > DRAIN_BOUND_SECONDS
    (container,) = pod["containers"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/healthz"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    annotations = spec["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == ports["metrics"]
    assert {p["name"] for p in service["spec"]["ports"]} == {"http", "metrics"}
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]

    (configmap,) = k8s("configmap.yaml")
    settings = configmap["data"]
    assert settings["FSEC_TUNNEL_LISTEN"].endswith(f":{ports['http']}")
    assert settings["FSEC_TUNNEL_METRICS_LISTEN"].endswith(f":{ports['metrics']}")
    mount = container["volumeMounts"][0]["mountPath"]
    assert settings["FSEC_TUNNEL_ISSUER_KEYS_FILE"].startswith(mount + "/")
    assert "subPath" not in container["volumeMounts"][0]
    (secret,) = k8s("secret.yaml")
    assert Path(settings["FSEC_TUNNEL_ISSUER_KEYS_FILE"]).name in secret["stringData"]


def test_servicemonitor_and_pdb_select_every_shard(k8s: K8s) -> None:
    (monitor,) = k8s("servicemonitor.yaml")
    (pdb,) = k8s("poddisruptionbudget.yaml")
    for name in ("shard-0.yaml", "shard-1.yaml"):
        deployment, service = k8s(name)
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        wanted = monitor["spec"]["selector"]["matchLabels"].items()
        assert wanted <= service["metadata"]["labels"].items()
        assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"


def test_configmap_and_env_example_use_only_known_variables(
    k8s: K8s, env_file_parser: EnvParser
) -> None:
    (configmap,) = k8s("configmap.yaml")
    known = set(env_file_parser(ENV_EXAMPLE))
    assert set(configmap["data"]) <= known


def test_systemd_unit_directives(unit_parser: UnitParser) -> None:
    entries = unit_parser(UNIT)
    service = {k: v for s, k, v in entries if s == "Service"}
    assert service["Type"] == "notify"
    assert "-HUP" in service["ExecReload"] and "$MAINPID" in service["ExecReload"]
    assert service["EnvironmentFile"]
    for key in ("DynamicUser", "NoNewPrivileges", "PrivateTmp", "ProtectHome"):
        assert service[key] == "yes", key
    assert service["ProtectSystem"] == "strict"
    assert service["CapabilityBoundingSet"] == ""
    assert service["AmbientCapabilities"] == ""
    families = set(service["RestrictAddressFamilies"].split())
    assert families == {"AF_INET", "AF_INET6", "AF_UNIX"}
    assert int(service["LimitNOFILE"]) > DEFAULT_MAX_CONNS
    assert int(service["TimeoutStopSec"].removesuffix("s")) > DRAIN_BOUND_SECONDS
    assert service["KillSignal"] == "SIGTERM"
    assert service["WatchdogSec"]


def test_systemd_tls_dropin_feeds_credentials(unit_parser: UnitParser) -> None:
    entries = unit_parser(TLS_DROPIN)
    creds = {v.split(":", 1)[0] for _, k, v in entries if k == "LoadCredential"}
    envs = dict(v.split("=", 1) for _, k, v in entries if k == "Environment")
    assert envs["FSEC_TUNNEL_TLS_CERT_FILE"].removeprefix("%d/") in creds
    assert envs["FSEC_TUNNEL_TLS_KEY_FILE"].removeprefix("%d/") in creds


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    tool = _tool("systemd-analyze")
    unit = tmp_path / UNIT.name
    # verify insists that ExecStart exists; point it at this venv's script.
    unit.write_text(
        UNIT.read_text().replace(
            "/opt/flowersec/bin/flowersec-tunnel", str(REPO / ".venv/bin/python")
        )
    )
    dropins = tmp_path / (UNIT.name + ".d")
    dropins.mkdir()
    shutil.copy(TLS_DROPIN, dropins / TLS_DROPIN.name)
    output = _run([tool, "verify", "--man=no", str(unit)], cwd=tmp_path)
    assert UNIT.name not in output, output
    exposure = _run([tool, "security", "--offline=yes", str(unit)], cwd=tmp_path)
    score = re.search(r"Overall exposure level for \S+: ([0-9.]+)", exposure)
    assert score is not None and float(score.group(1)) < 2.0, exposure


def test_dockerfile_final_stage(dockerfile: list[Any]) -> None:
    build, final = dockerfile
    assert build.image == final.image and "slim" in final.image
    assert final.env["FSEC_TUNNEL_LISTEN"] == "0.0.0.0:8080"
    assert final.env["FSEC_TUNNEL_ISSUER_KEYS_FILE"].startswith("/")
    assert final.last("USER").split(":")[0] not in {"0", "root"}
    assert final.last("EXPOSE") == "8080"
    assert json.loads(final.last("ENTRYPOINT")) == ["flowersec-tunnel"]
    healthcheck = final.last("HEALTHCHECK")
    assert json.loads(healthcheck.split(" CMD ", 1)[1])[0] == "python"
    labels = final.last("LABEL")
    for label in ("title", "licenses", "version", "revision", "created"):
        assert f"org.opencontainers.image.{label}=" in labels
    final_runs = " ".join(v for k, v in final.instructions if k == "RUN")
    for tool in ("apt-get", "gcc", "build-essential", "pip install"):
        assert tool not in final_runs
    copies = [v for k, v in final.instructions if k == "COPY"]
    assert copies == ["--from=build /opt/flowersec /opt/flowersec"]


def test_dockerfile_stamps_existing_build_constants(dockerfile: list[Any]) -> None:
    build, _ = dockerfile
    stamp = next(v for k, v in build.instructions if "BUILD_COMMIT" in v)
    source = Path(goflags.__file__).read_text()
    for name in re.findall(r"\^(BUILD_[A-Z]+) = ", stamp):
        assert re.search(rf'^{name} = "unknown"$', source, re.MULTILINE), name
    assert goflags.BUILD_COMMIT == "unknown" and goflags.BUILD_DATE == "unknown"


def test_dockerignore_keeps_only_the_sources() -> None:
    lines = [
        line
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert lines[0] == "*"
    kept = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert kept == {
        "pyproject.toml",
        "README.md",
        "flowersec_endpoint",
        "flowersec_tunnel",
    }


def test_hadolint() -> None:
    _run([_tool("hadolint"), str(REPO / "Dockerfile")])


def test_promtool_rules_and_config() -> None:
    tool = _tool("promtool")
    prom = DEPLOY / "prometheus"
    _run([tool, "check", "rules", "flowersec-tunnel.rules.yml"], cwd=prom)
    _run([tool, "test", "rules", "flowersec-tunnel.rules.test.yml"], cwd=prom)
    _run([tool, "check", "config", "prometheus.yml"], cwd=prom)


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads(
        (DEPLOY / "prometheus" / "grafana-dashboard.json").read_text()
    )
    return [t["expr"] for p in dashboard["panels"] for t in p["targets"]]


def _daemon_series() -> set[str]:
    """Every sample name the daemon's registry exposes once each is touched."""
    metrics = Metrics(lambda: 0, lambda: 0)
    metrics.enable()
    metrics.attach("ok")
    metrics.replace("ok")
    metrics.close("peer_closed", 1)
    metrics.pair_latency(0.1)
    metrics.encrypted()
    text = (metrics.render() or b"").decode()
    return {
        sample.name
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_rules_and_dashboard_use_only_daemon_metrics() -> None:
    known = _daemon_series()
    rules = (DEPLOY / "prometheus" / "flowersec-tunnel.rules.yml").read_text()
    text = rules + "\n".join(_dashboard_exprs())
    used = set(re.findall(r"(?<![:\w])flowersec_tunnel_[a-z_]+\b", text))
    assert used <= known, used - known


def test_dashboard_queries_parse(tmp_path: Path, yaml: ModuleType) -> None:
    tool = _tool("promtool")
    rules = [
        {
            "record": f"check:expr{i}",
            "expr": e.replace("$__rate_interval", "5m").replace("$instance", ".*"),
        }
        for i, e in enumerate(_dashboard_exprs())
    ]
    path = tmp_path / "dashboard-exprs.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "d", "rules": rules}]}))
    _run([tool, "check", "rules", str(path)])


def test_nginx_example(tmp_path: Path, self_signed: SelfSigned) -> None:
    tool = _tool("nginx")
    tls = tmp_path / "tls"
    tls.mkdir()
    site = (DEPLOY / "proxy" / "nginx.conf").read_text()
    for cert in set(re.findall(r"/etc/nginx/tls/(\S+)\.crt;", site)):
        self_signed(tls / f"{cert}.crt", tls / f"{cert}.key", cert)
    (tmp_path / "site.conf").write_text(site.replace("/etc/nginx/tls", str(tls)))
    (tmp_path / "main.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\n"
        "events {}\nhttp {\n  access_log off;\n"
        f"  client_body_temp_path {tmp_path}/body;\n"
        f"  proxy_temp_path {tmp_path}/proxy;\n"
        f"  include {tmp_path}/site.conf;\n}}\n"
    )
    _run([tool, "-t", "-q", "-p", str(tmp_path), "-c", str(tmp_path / "main.conf")])


def test_nginx_passes_upgrade_and_origin() -> None:
    site = (DEPLOY / "proxy" / "nginx.conf").read_text()
    blocks = site.split("location = /ws {")[1:]
    assert blocks
    for block in blocks:
        body = block.split("}", 1)[0]
        assert "proxy_http_version 1.1;" in body
        assert "proxy_set_header Upgrade $http_upgrade;" in body
        assert "proxy_set_header Connection $connection_upgrade;" in body
        assert "proxy_set_header Origin $http_origin;" in body
        assert "proxy_read_timeout" in body


def test_caddy_example(tmp_path: Path) -> None:
    tool = _tool("caddy")
    env_home = {"XDG_DATA_HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}
    done = subprocess.run(
        [
            tool,
            "validate",
            "--adapter",
            "caddyfile",
            "--config",
            str(DEPLOY / "proxy" / "Caddyfile"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **env_home},
    )
    assert done.returncode == 0, done.stderr
    assert "Valid configuration" in done.stdout + done.stderr
