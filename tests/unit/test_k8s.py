"""infra/k8s: the base and the example overlay build (kubectl kustomize), every resource validates against the
schemas of a fixed Kubernetes version (kubernetes-validate, offline) or of its operator's CRD (tests/data/crds), and
the Deployments are what ops was promised: two replicas, both probes, requests and limits, a PDB, no inline secret."""

import json
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from services.cli import SERVICES as PORTS
from services.common.deployment import unsafe_settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "infra" / "k8s"
CRDS = ROOT / "tests" / "data" / "crds"
KUBERNETES_VERSION = "1.32.0"
BUILDS = {"base": K8S / "base", "example": K8S / "overlays" / "example"}
CRD_SCHEMAS = {("rabbitmq.com/v1beta1", "RabbitmqCluster"): "rabbitmqcluster-v1beta1.json",
               ("postgresql.cnpg.io/v1", "Cluster"): "cnpg-cluster-v1.json"}
SECRET_NAME = re.compile(r"SECRET|PASSWORD|PASS$|TOKEN|KEY$")
REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
# The services with a database of their own (web has none: it reads through the reservations API).
DATABASES = {name for name in PORTS if "DB_URL:" in (ROOT / "services" / name / "config.yaml").read_text()}


def kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:
        pytest.fail("kubectl is missing (it builds infra/k8s with kustomize): install kubectl, e.g. "
                    "apt-get install kubernetes-client, or put it on PATH")
    return found


@cache
def build(name: str) -> tuple[dict[str, Any], ...]:
    done = subprocess.run([kubectl(), "kustomize", str(BUILDS[name])], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"kubectl kustomize {BUILDS[name].relative_to(ROOT)}: {done.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


def of_kind(name: str, kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in build(name) if doc["kind"] == kind}


def unknown_fields(instance: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Fields the schema does not declare (the API server would drop them silently: here they are mistakes)."""
    found = []
    if isinstance(instance, dict) and "properties" in schema:
        for key, value in instance.items():
            if key in schema["properties"]:
                found += unknown_fields(value, schema["properties"][key], f"{path}.{key}")
            elif not (schema.get("x-kubernetes-preserve-unknown-fields") or schema.get("additionalProperties")):
                found.append(f"{path}.{key}")
    elif isinstance(instance, dict) and isinstance(schema.get("additionalProperties"), dict):
        for key, value in instance.items():
            found += unknown_fields(value, schema["additionalProperties"], f"{path}.{key}")
    elif isinstance(instance, list) and isinstance(schema.get("items"), dict):
        for index, value in enumerate(instance):
            found += unknown_fields(value, schema["items"], f"{path}[{index}]")
    return found


def validate(doc: dict[str, Any]) -> None:
    crd = CRD_SCHEMAS.get((doc["apiVersion"], doc["kind"]))
    if crd is None:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        return
    schema = json.loads((CRDS / crd).read_text())["openAPIV3Schema"]
    jsonschema.Draft7Validator(schema).validate(doc)
    assert not unknown_fields(doc, schema), unknown_fields(doc, schema)


@pytest.mark.parametrize("name", BUILDS)
def test_every_resource_validates(name):
    kinds = {doc["kind"] for doc in build(name)}
    assert {"Deployment", "Service", "PodDisruptionBudget", "Job", "ConfigMap", "RabbitmqCluster", "Cluster"} <= kinds
    for doc in build(name):
        try:
            validate(doc)
        except (kubernetes_validate.ValidationError, jsonschema.ValidationError) as exc:
            pytest.fail(f"{name}: {doc['kind']}/{doc['metadata']['name']}: {exc}")


def test_the_validation_can_fail():
    deployment = dict(of_kind("base", "Deployment")["inventory"])
    with pytest.raises(kubernetes_validate.ValidationError):
        validate({**deployment, "spec": {**deployment["spec"], "replicas": "two"}})
    with pytest.raises(kubernetes_validate.ValidationError):
        validate({**deployment, "spec": {**deployment["spec"], "replica": 2}})  # a typo: strict
    cluster = of_kind("base", "RabbitmqCluster")["drive-rabbitmq"]
    with pytest.raises(jsonschema.ValidationError):
        validate({**cluster, "spec": {**cluster["spec"], "replicas": "three"}})
    with pytest.raises(AssertionError):
        validate({**cluster, "spec": {**cluster["spec"], "replica": 3}})


def containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    pod = deployment["spec"]["template"]["spec"]
    return pod.get("initContainers", []) + pod["containers"]


@pytest.mark.parametrize("name", BUILDS)
def test_a_deployment_per_service_with_replicas_probes_and_resources(name):
    deployments = of_kind(name, "Deployment")
    assert set(deployments) == set(PORTS)
    for service, deployment in deployments.items():
        replicas = deployment["spec"]["replicas"]
        assert replicas == 2 if name == "base" else replicas >= 2, service
        pod = deployment["spec"]["template"]
        assert pod["spec"]["terminationGracePeriodSeconds"] >= 15
        [main] = pod["spec"]["containers"]
        assert [p["containerPort"] for p in main["ports"]] == [PORTS[service]]
        port_name = main["ports"][0]["name"]
        for probe, path in (("readinessProbe", "/health/ready"), ("livenessProbe", "/health/live")):
            assert main[probe]["httpGet"]["path"] == path, f"{service} {probe}"
            assert main[probe]["httpGet"]["port"] in (port_name, PORTS[service]), f"{service} {probe}"
        for container in containers(deployment):
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]) and {"cpu", "memory"} <= set(resources["limits"]), \
                f"{service}/{container['name']}"
        annotations = pod["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/path"] == "/metrics"
        assert annotations["prometheus.io/port"] == str(PORTS[service])
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        assert all(c["securityContext"]["allowPrivilegeEscalation"] is False for c in containers(deployment))
        assert pod["spec"]["initContainers"][0]["command"][-2:] == ["wait-for-setup", service]


@pytest.mark.parametrize("name", BUILDS)
def test_each_deployment_has_a_disruption_budget_and_a_service_that_select_its_pods(name):
    budgets, services = of_kind(name, "PodDisruptionBudget"), of_kind(name, "Service")
    for service, deployment in of_kind(name, "Deployment").items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        budget = next(b for b in budgets.values() if b["spec"]["selector"]["matchLabels"].items() <= labels.items())
        assert 0 < budget["spec"]["minAvailable"] < deployment["spec"]["replicas"], service
        front = services[service]
        assert front["spec"]["selector"].items() <= labels.items()
        assert [p["port"] for p in front["spec"]["ports"]] == [PORTS[service]]


def environments(name: str) -> list[tuple[str, list[dict[str, Any]]]]:
    found = []
    for kind in ("Deployment", "Job"):
        for doc in of_kind(name, kind).values():
            for container in containers(doc) if kind == "Deployment" else doc["spec"]["template"]["spec"]["containers"]:
                found.append((f"{kind}/{doc['metadata']['name']}/{container['name']}", container.get("env", [])))
    return found


@pytest.mark.parametrize("name", BUILDS)
def test_no_secret_is_inlined(name):
    assert not of_kind(name, "Secret"), "Secrets are made beforehand (kubectl create secret), never in git"
    for where, env in environments(name):
        from_secrets = set()
        for var in env:
            if "valueFrom" in var:
                if "secretKeyRef" in var["valueFrom"]:
                    from_secrets.add(var["name"])
                continue
            value = str(var.get("value", ""))
            assert not SECRET_NAME.search(var["name"]), f"{where}: {var['name']} is inlined, use secretKeyRef"
            # A URL's password may only be a reference to a variable read from a Secret just before.
            userinfo = re.match(r"^[a-z0-9+]+://([^@/]*)@", value)
            if userinfo and ":" in userinfo.group(1):
                password = userinfo.group(1).split(":", 1)[1]
                assert REFERENCE.fullmatch(password), f"{where}: {var['name']} carries a password"
                assert REFERENCE.fullmatch(password).group(1) in from_secrets, f"{where}: {var['name']}"
    for config in of_kind(name, "ConfigMap").values():
        assert not [k for k in config.get("data", {}) if SECRET_NAME.search(k)], config["metadata"]["name"]


@pytest.mark.parametrize("name", BUILDS)
def test_not_dev_and_the_start_check_passes_with_real_secrets(name):
    [config] = of_kind(name, "ConfigMap").values()
    assert config["data"]["DRIVE_ENV"] not in ("dev", "")
    for where, env in environments(name):
        assert "DRIVE_ENV" not in {v["name"] for v in env}, where  # only the ConfigMap says it
        values = {var["name"]: "real-secret-0123456789abcdef0123456789" if "valueFrom" in var else var["value"]
                  for var in env}
        resolved = {k: REFERENCE.sub(lambda m, known=values: known[m.group(1)], str(v)) for k, v in values.items()}
        assert resolved.get("AMQP_URI"), where
        service = where.split("/")[1]
        assert bool([k for k in resolved if k.endswith("_DB_URL")]) == (service in DATABASES or kind_is_job(where)), \
            where
        assert unsafe_settings(resolved) == [], where


def kind_is_job(where: str) -> bool:
    return where.startswith("Job/")


def test_setup_job_runs_drive_setup_on_every_database():
    [job] = of_kind("base", "Job").values()
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["drive", "setup"]
    names = {var["name"] for var in container["env"]}
    assert {f"{s.upper()}_DB_URL" for s in DATABASES} | {"AMQP_URI"} <= names


def test_the_broker_and_database_clusters():
    [rabbit] = of_kind("base", "RabbitmqCluster").values()
    assert rabbit["spec"]["replicas"] == 3
    [postgres] = of_kind("base", "Cluster").values()
    assert postgres["spec"]["instances"] == 3
    initdb = postgres["spec"]["bootstrap"]["initdb"]
    created = {initdb["database"]} | {re.match(r"CREATE DATABASE (\w+) OWNER (\w+)", sql).group(1)
                                       for sql in initdb["postInitSQL"]}
    assert created == DATABASES
    assert initdb["secret"]["name"] == "drive-postgres-app"
    urls = [var["value"] for _, env in environments("base") for var in env if var["name"].endswith("_DB_URL")]
    assert all(f"@{postgres['metadata']['name']}-rw:5432/" in url for url in urls)
    assert all(f"@{rabbit['metadata']['name']}:5672/" in var["value"] for _, env in environments("base")
               for var in env if var["name"] == "AMQP_URI")
