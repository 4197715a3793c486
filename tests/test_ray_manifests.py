"""Deployment on Ray: the KubeRay manifests and the compose profile ``ray``, checked as files.

No Kubernetes cluster nor container engine runs here: the manifests (``docker/kuberay/``) and
``docker/compose.ray.yaml`` are parsed and held to the facts the Ray executor relies on (one image
family and one Ray version for server and nodes, the shared workspace at the same path on every
node, uid 1000, GPUs requested as Ray is told, no secret inline), validated against KubeRay's CRD
schema and the Compose Specification's schema (tests/fixtures), and every ``ray start`` command
line is read by the pinned Ray's own parser. Each checker is shown to find what it looks for.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from jupyter_yolo.app import YoloApp
from jupyter_yolo.container import ContainerError
from jupyter_yolo.container.config import ContainerConfig
from jupyter_yolo.container.supervisor import lab_arguments
from jupyter_yolo.contract.executors import RAY_VERSION

from .conftest import REPO_ROOT
from .test_container_contract import CONTRACT, Contract, check_compose, load_contract, plain
from .test_ray_deploy import server_config

DOCKER = REPO_ROOT / "docker"
KUBERAY = DOCKER / "kuberay"
COMPOSE_RAY = DOCKER / "compose.ray.yaml"
WORKSPACE = "/workspace"
IMAGE_FAMILY = "jupyter-yolo"


# --------------------------------------------------------------------------- KubeRay

SECRET_NAME = re.compile(r"TOKEN|PASSWORD|SECRET|(^|_)KEY(S)?$|AUTHORIZED_KEYS", re.IGNORECASE)
IMAGE = re.compile(rf"^(?:[^/]+/)*{IMAGE_FAMILY}:([a-z]+)$")


def manifests() -> list[dict[str, Any]]:
    """Every document of docker/kuberay/*.yaml."""
    return [
        doc
        for path in sorted(KUBERAY.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


def inline_secrets(node: Any, where: str = "") -> list[str]:
    """Environment entries whose name looks like a credential and whose value is inline."""
    found: list[str] = []
    if isinstance(node, dict):
        name = node.get("name")
        if isinstance(name, str) and SECRET_NAME.search(name) and "value" in node:
            found.append(f"{where}: {name} has an inline value")
        for key, value in node.items():
            found += inline_secrets(value, f"{where}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += inline_secrets(value, f"{where}[{i}]")
    return found


def check_pod(where: str, pod: dict[str, Any], claim: str, contract: Contract) -> list[str]:
    """Findings of one pod template: the product's image, the shared workspace, uid 1000."""
    findings: list[str] = []
    spec = pod.get("spec") or {}
    security = spec.get("securityContext") or {}
    uid = f"{security.get('runAsUser')}:{security.get('runAsGroup')}"
    if uid != contract.user or security.get("runAsNonRoot") is not True:
        findings.append(f"{where}: runs as {uid}, not as the non-root {contract.user}")
    volumes = {v["name"]: v for v in spec.get("volumes") or []}
    for container in spec.get("containers") or []:
        name = f"{where}/{container.get('name')}"
        match = IMAGE.match(str(container.get("image")))
        if match is None or match.group(1) not in contract.variants:
            findings.append(f"{name}: image {container.get('image')} is not a {IMAGE_FAMILY} one")
        mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts") or []}
        source = volumes.get(mounts.get(WORKSPACE, ""), {}).get("persistentVolumeClaim") or {}
        if source.get("claimName") != claim:
            findings.append(f"{name}: {WORKSPACE} is not the shared claim {claim}")
        shm = volumes.get(mounts.get("/dev/shm", ""), {}).get("emptyDir") or {}
        if shm.get("medium") != "Memory":
            findings.append(f"{name}: no memory-backed /dev/shm")
        context = container.get("securityContext") or {}
        if context.get("allowPrivilegeEscalation") is not False:
            findings.append(f"{name}: privilege escalation is allowed")
    return findings


def check_kuberay(docs: list[dict[str, Any]], contract: Contract) -> list[str]:
    """Findings of the KubeRay manifests against the Ray executor's contract."""
    findings: list[str] = [f"inline secret {s}" for s in inline_secrets(docs)]
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    findings += [f"a {kind} in the manifests" for kind in by_kind if kind == "Secret"]
    claims = by_kind.get("PersistentVolumeClaim", [])
    if len(claims) != 1 or claims[0]["spec"].get("accessModes") != ["ReadWriteMany"]:
        return [*findings, "the workspace is not one ReadWriteMany PersistentVolumeClaim"]
    claim = claims[0]["metadata"]["name"]
    (cluster,) = by_kind["RayCluster"]
    if cluster.get("apiVersion") != "ray.io/v1":
        findings.append(f"RayCluster apiVersion {cluster.get('apiVersion')} is not ray.io/v1")
    spec = cluster["spec"]
    if spec.get("rayVersion") != RAY_VERSION:
        findings.append(f"rayVersion {spec.get('rayVersion')} is not the pinned {RAY_VERSION}")
    autoscaler = (spec.get("autoscalerOptions") or {}).get("securityContext") or {}
    if spec.get("enableInTreeAutoscaling") and autoscaler.get("runAsNonRoot") is not True:
        findings.append("the autoscaler sidecar may run as root")
    head = spec["headGroupSpec"]
    params = head.get("rayStartParams") or {}
    if params.get("dashboard-host") != "0.0.0.0":
        findings.append("the head's dashboard (Jobs API) does not listen on 0.0.0.0")
    dashboard_port = int(params.get("dashboard-port", 8265))
    groups = {"head": head, **{g["groupName"]: g for g in spec.get("workerGroupSpecs") or []}}
    for name, group in groups.items():
        params = group.get("rayStartParams") or {}
        findings += [
            f"{name}: rayStartParams {key} is not a string (KubeRay wants strings)"
            for key, value in params.items()
            if not isinstance(value, str)
        ]
        findings += check_pod(name, group["template"], claim, contract)
        (container,) = group["template"]["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in container.get("env") or []}
        if int(env.get("RAY_JOB_STOP_WAIT_TIME_S") or 3) < 30:
            findings.append(f"{name}: Ray's stop kills a runner before it saved last.pt")
        variant = IMAGE.match(str(container["image"]))
        resources = container.get("resources") or {}
        gpus = {
            str(resources.get(part, {}).get("nvidia.com/gpu", 0)) for part in ("requests", "limits")
        }
        if name == "head":
            continue
        if not group.get("minReplicas", 0) <= group.get("replicas", 0) <= group["maxReplicas"]:
            findings.append(f"{name}: replicas outside [minReplicas, maxReplicas]")
        if variant is None or variant.group(1) != name:
            findings.append(f"{name}: the group does not run the {name} image")
        if gpus != {params.get("num-gpus", "0")}:
            findings.append(f"{name}: num-gpus {params.get('num-gpus')} is not the pod's {gpus}")
    if not {"cpu", "cuda"} <= set(groups):
        findings.append(f"worker groups {sorted(set(groups) - {'head'})} lack cpu or cuda")
    elif groups["cuda"]["rayStartParams"].get("num-gpus", "0") == "0":
        findings.append("cuda: no GPU")
    address = f"http://{cluster['metadata']['name']}-head-svc:{dashboard_port}"
    for deployment in by_kind.get("Deployment", []):
        template = deployment["spec"]["template"]
        findings += check_pod("jupyterlab", template, claim, contract)
        (container,) = template["spec"]["containers"]
        env = {e["name"]: e for e in container.get("env") or []}
        values = {k: str(e["value"]) for k, e in env.items() if "value" in e}
        if values.get("YOLO_EXECUTOR") != "ray" or values.get("YOLO_RAY_ADDRESS") != address:
            findings.append(f"jupyterlab: not YOLO_EXECUTOR=ray with YOLO_RAY_ADDRESS={address}")
        token = (env.get("JUPYTER_TOKEN") or {}).get("valueFrom") or {}
        if "secretKeyRef" not in token and "JUPYTER_TOKEN_FILE" not in env:
            findings.append("jupyterlab: the token does not come from a Secret")
        findings += [f"jupyterlab: {k} is not documented" for k in env if k not in contract.env]
        try:
            ContainerConfig.from_environ({"YOLO_WORKSPACE": WORKSPACE, **values})
        except ContainerError as exc:
            findings.append(f"jupyterlab: the entrypoint refuses it: {exc.message}")
        labels = template["metadata"]["labels"]
        services = [s for s in by_kind.get("Service", []) if s["spec"]["selector"] == labels]
        if not services:
            findings.append("jupyterlab: no Service selects the JupyterLab pod")
        for policy in by_kind.get("NetworkPolicy", []):
            allowed = [r for r in policy["spec"]["ingress"] for p in r["from"]]
            lab = [
                r
                for r in allowed
                if any(p.get("podSelector", {}).get("matchLabels") == labels for p in r["from"])
            ]
            if not any(dashboard_port in [p["port"] for p in r.get("ports", [])] for r in lab):
                findings.append("the NetworkPolicy keeps JupyterLab from the Jobs API")
    if not by_kind.get("Deployment"):
        findings.append("no JupyterLab Deployment")
    return findings


@pytest.fixture(scope="module")
def contract() -> Contract:
    return load_contract(CONTRACT.read_text())


def test_kuberay_manifests_keep_the_ray_contract(contract: Contract) -> None:
    docs = manifests()
    assert {d["kind"] for d in docs} >= {
        "RayCluster",
        "PersistentVolumeClaim",
        "Deployment",
        "Service",
        "NetworkPolicy",
    }
    assert sorted(p.name for p in KUBERAY.glob("*.yaml")) == [
        "jupyterlab.yaml",
        "raycluster.yaml",
        "workspace-pvc.yaml",
    ]
    assert check_kuberay(docs, contract) == []


def test_kuberay_checker_finds_what_broken_manifests_break(contract: Contract) -> None:
    docs = manifests()
    by_kind = {d["kind"]: d for d in docs}
    by_kind["PersistentVolumeClaim"]["spec"]["accessModes"] = ["ReadWriteOnce"]
    assert check_kuberay(docs, contract) == [
        "the workspace is not one ReadWriteMany PersistentVolumeClaim"
    ]
    docs = manifests()
    by_kind = {d["kind"]: d for d in docs}
    cluster = by_kind["RayCluster"]["spec"]
    cluster["rayVersion"] = "2.9.0"
    head = cluster["headGroupSpec"]
    head["rayStartParams"]["dashboard-host"] = "127.0.0.1"
    head["template"]["spec"]["securityContext"]["runAsUser"] = 0
    cuda = next(g for g in cluster["workerGroupSpecs"] if g["groupName"] == "cuda")
    cuda["rayStartParams"]["num-gpus"] = 4
    cuda["replicas"] = 99
    cluster["autoscalerOptions"].pop("securityContext")
    (worker,) = cuda["template"]["spec"]["containers"]
    worker["image"] = "rayproject/ray:2.60.0-gpu"
    worker["env"] = []
    worker["volumeMounts"] = [m for m in worker["volumeMounts"] if m["mountPath"] != WORKSPACE]
    lab = by_kind["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    lab["env"] = [
        {"name": "JUPYTER_TOKEN", "value": "hunter2hunter2"},
        {"name": "YOLO_EXECUTOR", "value": "ray"},
        {"name": "YOLO_RAY_ADDRESS", "value": "ray-head:6379"},
    ]
    by_kind["NetworkPolicy"]["spec"]["ingress"] = by_kind["NetworkPolicy"]["spec"]["ingress"][:1]
    findings = "\n".join(check_kuberay(docs, contract))
    for fragment in [
        "JUPYTER_TOKEN has an inline value",
        "rayVersion 2.9.0 is not the pinned",
        "does not listen on 0.0.0.0",
        "head: runs as 0:1000",
        "cuda: rayStartParams num-gpus is not a string",
        "cuda/ray-worker: image rayproject/ray:2.60.0-gpu is not a jupyter-yolo one",
        "cuda/ray-worker: /workspace is not the shared claim",
        "cuda: the group does not run the cuda image",
        "cuda: replicas outside",
        "the autoscaler sidecar may run as root",
        "cuda: Ray's stop kills a runner before it saved last.pt",
        "jupyterlab: not YOLO_EXECUTOR=ray",
        "the token does not come from a Secret",
        "the entrypoint refuses it",
        "keeps JupyterLab from the Jobs API",
    ]:
        assert fragment in findings, f"{fragment!r} not found in:\n{findings}"


# --------------------------------------------------------------------------- compose profile ray


def flags(entrypoint: list[str]) -> dict[str, str]:
    """``--name=value`` (and bare ``--name``) arguments of a ``ray start`` command line."""
    pairs = [a[2:].partition("=") for a in entrypoint if a.startswith("--")]
    return {name: value for name, _, value in pairs}


def check_compose_ray(data: dict[str, Any], contract: Contract) -> list[str]:
    """Findings of compose.ray.yaml: a head, a worker and JupyterLab on one shared workspace."""
    findings: list[str] = []
    services: dict[str, Any] = data.get("services") or {}
    if set(services) != {"ray-head", "ray-worker", "jupyterlab"}:
        return [f"services {sorted(services)} are not ray-head, ray-worker and jupyterlab"]
    if data.get("name") != "jupyter-yolo" or set(data.get("volumes") or {}) != {"workspace"}:
        findings.append("not the project and workspace volume of compose.yaml")
    for name, service in services.items():
        if service.get("profiles") != ["ray"]:
            findings.append(f"{name}: not in the profile ray (only)")
        build = service.get("build") or {}
        if service.get("image") != "jupyter-yolo:cpu" or build.get("dockerfile") != (
            plain(contract.variants["cpu"]["Dockerfile"])
        ):
            findings.append(f"{name}: not the cpu image")
        if "workspace:/workspace" not in service.get("volumes", []):
            findings.append(f"{name}: the workspace volume is not at /workspace")
        if name != "jupyterlab" and "RAY_JOB_STOP_WAIT_TIME_S=30" not in service["environment"]:
            findings.append(f"{name}: Ray's stop kills a runner before it saved last.pt")
        if not service.get("shm_size"):
            findings.append(f"{name}: no shm_size for Ray's object store")
        published = [str(p).rsplit(":", 1)[-1] for p in service.get("ports", [])]
        if {"6379", "8265", "10001"} & set(published):
            findings.append(f"{name}: publishes Ray's ports {published} on the host")
    head = flags(services["ray-head"].get("entrypoint") or [])
    worker = flags(services["ray-worker"].get("entrypoint") or [])
    if services["ray-head"]["entrypoint"][:2] != ["ray", "start"] or "head" not in head:
        findings.append("ray-head does not run ray start --head")
    if head.get("dashboard-host") != "0.0.0.0":
        findings.append("ray-head's Jobs API does not listen on 0.0.0.0")
    if worker.get("address") != f"ray-head:{head.get('port', '6379')}":
        findings.append(f"ray-worker joins {worker.get('address')}, not the head")
    lab = services["jupyterlab"]
    env = dict(str(e).split("=", 1) for e in lab.get("environment", []) if "=" in str(e))
    address = f"http://ray-head:{head.get('dashboard-port', '8265')}"
    if env.get("YOLO_EXECUTOR") != "ray" or env.get("YOLO_RAY_ADDRESS") != address:
        findings.append(f"jupyterlab: not YOLO_EXECUTOR=ray with YOLO_RAY_ADDRESS={address}")
    # the JupyterLab service keeps the contract of compose.yaml's services (as the cpu variant)
    findings += [
        f.replace("service cpu", "jupyterlab")
        for f in check_compose({"services": {"cpu": lab}}, contract)
        if "are not the variants" not in f and "profile" not in f
    ]
    return findings


def test_compose_profile_ray_runs_a_head_a_worker_and_jupyterlab(contract: Contract) -> None:
    data = yaml.safe_load(COMPOSE_RAY.read_text())
    assert check_compose_ray(data, contract) == []
    lab = data["services"]["jupyterlab"]
    assert lab["depends_on"]["ray-head"]["condition"] == "service_healthy"
    assert all(s.get("healthcheck", {}).get("test") for s in data["services"].values())
    # compose.yaml stays one service per variant (the profile ray lives beside it) and passes
    # the executor settings through from the shell, for a cluster of one's own
    base = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    assert "ray" not in base["services"]
    assert {"YOLO_EXECUTOR", "YOLO_RAY_ADDRESS", "YOLO_RAY_PYTHON"} <= set(
        base["x-common"]["environment"]
    )


def test_compose_ray_checker_finds_what_a_broken_file_breaks(contract: Contract) -> None:
    data = yaml.safe_load(COMPOSE_RAY.read_text())
    services = data["services"]
    services["ray-head"]["ports"] = ["8265:8265"]
    services["ray-head"]["entrypoint"] = ["ray", "start", "--head", "--dashboard-port=8265"]
    services["ray-worker"]["volumes"] = ["scratch:/workspace"]
    services["ray-worker"]["entrypoint"] = ["ray", "start", "--address=localhost:6379"]
    services["jupyterlab"]["environment"] = ["JUPYTER_TOKEN=x", "YOLO_EXECUTOR=local"]
    services["jupyterlab"]["profiles"] = ["ray", "cpu"]
    findings = "\n".join(check_compose_ray(data, contract))
    for fragment in [
        "ray-head: publishes Ray's ports",
        "ray-head's Jobs API does not listen",
        "ray-worker: the workspace volume is not at /workspace",
        "ray-worker joins localhost:6379",
        "jupyterlab: not YOLO_EXECUTOR=ray",
        "jupyterlab: JUPYTER_TOKEN is not passed",
        "jupyterlab: not in the profile ray",
    ]:
        assert fragment in findings, f"{fragment!r} not found in:\n{findings}"


# --------------------------------------------------------------------------- Ray's own CLI

PARSE_RAY_START = """
import json, sys
from ray.scripts.scripts import start
out = {}
for name, args in json.loads(sys.stdin.read()).items():
    try:
        params = start.make_context("start", args).params
        out[name] = {k: v for k, v in params.items() if isinstance(v, (int, float, str))}
    except Exception as exc:  # click's usage errors: an option Ray does not have
        out[name] = {"error": f"{type(exc).__name__}: {exc}"}
print(json.dumps(out))
"""


def ray_start_lines() -> dict[str, list[str]]:
    """Every ``ray start`` command line of the compose profile and the RayCluster."""
    services = yaml.safe_load(COMPOSE_RAY.read_text())["services"]
    lines = {
        f"compose {name}": [
            re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", arg)
            for arg in services[name]["entrypoint"][2:]
        ]
        for name in ("ray-head", "ray-worker")
    }
    (cluster,) = [d for d in manifests() if d["kind"] == "RayCluster"]
    spec = cluster["spec"]
    groups = [("head", spec["headGroupSpec"], ["--head"])] + [
        (g["groupName"], g, [f"--address={cluster['metadata']['name']}-head-svc:6379"])
        for g in spec["workerGroupSpecs"]
    ]
    for name, group, base in groups:  # KubeRay turns each rayStartParams entry into --key=value
        lines[f"kuberay {name}"] = [
            *base,
            "--block",
            *(f"--{k}={v}" for k, v in group["rayStartParams"].items()),
        ]
    return lines


def test_every_ray_start_line_is_one_ray_accepts() -> None:
    """Ray's own ``ray start`` parser (the pinned Ray) reads every command line, in a subprocess.

    A misspelt option among them (``broken``) shows that the parser refuses what Ray lacks.
    """
    lines = {**ray_start_lines(), "broken": ["--head", "--dashbord-host=0.0.0.0"]}
    done = subprocess.run(
        [sys.executable, "-c", PARSE_RAY_START],
        input=json.dumps(lines),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    parsed = json.loads(done.stdout.strip().splitlines()[-1])
    assert "dashbord-host" in parsed.pop("broken").get("error", "")
    assert [name for name, p in parsed.items() if "error" in p] == [], parsed
    head = parsed["compose ray-head"]
    assert (head["dashboard_host"], head["dashboard_port"], head["num_cpus"]) == (
        "0.0.0.0",
        8265,
        0,
    )
    assert parsed["compose ray-worker"]["address"] == f"ray-head:{head['port']}"
    assert parsed["kuberay head"]["dashboard_host"] == "0.0.0.0"
    assert parsed["kuberay cuda"]["num_gpus"] == 2 and parsed["kuberay cpu"]["num_gpus"] == 0


def test_the_jupyterlab_settings_of_both_deployments_reach_the_server(tmp_path: Path) -> None:
    (deployment,) = [d for d in manifests() if d["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    kube = {e["name"]: str(e["value"]) for e in container["env"] if "value" in e}
    lab = yaml.safe_load(COMPOSE_RAY.read_text())["services"]["jupyterlab"]
    compose = dict(str(e).split("=", 1) for e in lab["environment"] if "=" in str(e))
    for env, address in (
        (kube, "http://jupyter-yolo-head-svc:8265"),
        (compose, "http://ray-head:8265"),
    ):
        config = ContainerConfig.from_environ({**env, "YOLO_WORKSPACE": str(tmp_path)})
        app = YoloApp(config=server_config(lab_arguments(config, [])))
        assert (app.executor, app.ray_address, app.ray_python) == ("ray", address, "python3")


def raycluster_schema() -> Any:
    """KubeRay's RayCluster v1 schema (tests/fixtures/kuberay), strict about unknown fields."""
    import gzip

    def strict(node: Any) -> None:
        if isinstance(node, dict):
            if node.pop("x-kubernetes-int-or-string", False):
                node.pop("type", None)
                node["anyOf"] = [{"type": "integer"}, {"type": "string"}]
            if (
                node.get("type") == "object"
                and "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False  # the API server prunes unknown fields
            for value in node.values():
                strict(value)
        elif isinstance(node, list):
            for value in node:
                strict(value)

    path = REPO_ROOT / "tests" / "fixtures" / "kuberay" / "raycluster-v1.schema.json.gz"
    schema = json.loads(gzip.decompress(path.read_bytes()))
    strict(schema)
    return schema


def test_the_raycluster_is_valid_for_kuberay_s_schema() -> None:
    import jsonschema

    schema = raycluster_schema()
    validator = jsonschema.Draft7Validator(schema)
    (cluster,) = [d for d in manifests() if d["kind"] == "RayCluster"]
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(cluster)
    ]
    assert errors == []
    cluster["spec"]["autoscalerOptions"]["idleTimeoutSeconds"] = "600"
    cluster["spec"]["headGroupSpec"]["rayStartParam"] = {"num-cpus": "0"}
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(cluster)
    ]
    assert any("idleTimeoutSeconds" in e and "integer" in e for e in errors), errors
    assert any("'rayStartParam' was unexpected" in e for e in errors), errors

    # the JupyterLab pod too: the CRD's pod template is Kubernetes' own PodTemplateSpec schema
    pod_template = schema["properties"]["spec"]["properties"]["headGroupSpec"]["properties"]
    pods = jsonschema.Draft7Validator(pod_template["template"])
    (deployment,) = [d for d in manifests() if d["kind"] == "Deployment"]
    template = deployment["spec"]["template"]
    assert [e.message for e in pods.iter_errors(template)] == []
    template["spec"]["containers"][0]["readinessProbe"]["httpGet"]["paht"] = "/api"
    assert any("'paht' was unexpected" in e.message for e in pods.iter_errors(template))


def test_every_compose_file_is_valid_for_the_compose_specification() -> None:
    import gzip

    import jsonschema

    path = REPO_ROOT / "tests" / "fixtures" / "compose" / "compose-spec.schema.json.gz"
    validator = jsonschema.Draft7Validator(json.loads(gzip.decompress(path.read_bytes())))
    files = sorted(DOCKER.glob("compose*.yaml"))
    assert {p.name for p in files} >= {"compose.yaml", "compose.ray.yaml", "compose.camera.yaml"}
    for compose in files:
        data = yaml.safe_load(compose.read_text())
        assert [e.message for e in validator.iter_errors(data)] == [], compose.name
    data = yaml.safe_load(COMPOSE_RAY.read_text())
    lab = data["services"]["jupyterlab"]
    lab["entrypont"] = lab.pop("entrypoint")
    lab["volumes"] = "workspace:/workspace"
    messages = [e.message for e in validator.iter_errors(data)]
    assert any("'entrypont' does not match any of the regexes" in m for m in messages), messages
    assert any("'workspace:/workspace' is not of type 'array'" in m for m in messages), messages
