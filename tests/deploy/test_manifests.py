"""The deploy files cannot run here (GPUs, Docker, a cluster): check them against the
schemas their tools use. Kubernetes manifests against Kubernetes' own OpenAPI schemas
(``kubernetes-validate``, strict: an unknown field is an error); compose files against the
compose specification's JSON schema (``check-jsonschema``'s bundled copy)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
KUBERNETES_VERSION = "1.33.0"
MANIFESTS = sorted(DEPLOY.glob("**/k8s/*.yaml"))
COMPOSE_FILES = sorted([*DEPLOY.glob("**/*compose*.yml")])


def test_every_deploy_file_is_found() -> None:
    names = {path.name for path in MANIFESTS} | {path.name for path in COMPOSE_FILES}
    assert {"gateway.yaml", "vllm.yaml", "router.yaml", "docker-compose.yml",
            "compose.router.yml"} <= names  # fmt: skip


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_each_kubernetes_manifest_matches_the_api_schema(manifest: Path) -> None:
    documents = [doc for doc in yaml.safe_load_all(manifest.read_text()) if doc]
    assert documents
    for document in documents:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("compose", COMPOSE_FILES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_each_compose_file_matches_the_compose_spec(compose: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
         str(compose)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_gateways_drain_fits_in_the_pods_grace_period() -> None:
    gateway = next(yaml.safe_load_all((DEPLOY / "k8s" / "gateway.yaml").read_text()))
    spec = gateway["spec"]["template"]["spec"]
    args = spec["containers"][0]["args"]
    drain = float(next(a.split("=", 1)[1] for a in args if a.startswith("--drain-timeout-s=")))
    assert spec["terminationGracePeriodSeconds"] >= drain + 10
