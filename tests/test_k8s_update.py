"""`copier update` and the Kubernetes files: the base follows the template, the overlays stay the user's."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import copier_cli, kustomize
from updating import commit_all, edit, leftover_rejects, versioned_template

from stackplate.project import conflicted_files

pytestmark = pytest.mark.slow  # a real copier update (several renders)

OVERLAYS = Path("deploy/k8s/overlays")
API_BASE = Path("deploy/k8s/base/api.yaml")


def v2_changes_base_and_overlay(template: Path) -> None:
    """Template v2: more API replicas at most (base), and new words in the overlays' templates."""
    base = next((template / "template/deploy/k8s/base").glob('*of_kind("fastapi")*'))
    edit(base, "  maxReplicas: 6\n", "  maxReplicas: 8\n")
    for overlay in ("staging", "production"):
        edit(
            template / f"template/deploy/k8s/overlays/{overlay}/kustomization.yaml.jinja",
            "apiVersion: kustomize.config.k8s.io/v1beta1\n",
            "# Template v2 says more here.\napiVersion: kustomize.config.k8s.io/v1beta1\n",
        )


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    return versioned_template(tmp_path_factory.mktemp("k8s-versions"), v2_changes_base_and_overlay)


def user_overlay_edits(project: Path) -> None:
    """What a user does in an overlay: a pushed image's tag, a patch file of their own."""
    staging = project / OVERLAYS / "staging/kustomization.yaml"
    edit(staging, 'newTag: "latest"', 'newTag: "1.2.0"', 1)
    edit(staging, "resources:\n", "patches:\n  - path: replicas.yaml\n\nresources:\n")
    (project / OVERLAYS / "staging/replicas.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: frontend\nspec:\n  replicas: 3\n"
    )
    edit(
        project / OVERLAYS / "production/kustomization.yaml",
        "postgres.example.internal",
        "db.internal.shop.io",
    )
    commit_all(project, "my overlays")


def test_an_update_regenerates_the_base_and_keeps_the_overlays_byte_for_byte(project) -> None:
    user_overlay_edits(project)
    before = {path: path.read_bytes() for path in (project / OVERLAYS).rglob("*") if path.is_file()}
    assert b"maxReplicas: 6" in (project / API_BASE).read_bytes()
    result = copier_cli("update", "--trust", "--defaults", "--vcs-ref=v2", cwd=project)
    assert result.returncode == 0, result.stderr
    after = {path: path.read_bytes() for path in (project / OVERLAYS).rglob("*") if path.is_file()}
    assert after == before
    assert b"  maxReplicas: 8\n" in (project / API_BASE).read_bytes()
    assert conflicted_files(project) == [] and leftover_rejects(project) == []
    # The kept overlay builds on the new base, with the user's changes in it.
    docs = {(doc["kind"], doc["metadata"]["name"]): doc for doc in kustomize(project, "staging")}
    assert docs["HorizontalPodAutoscaler", "api"]["spec"]["maxReplicas"] == 8
    assert docs["Deployment", "frontend"]["spec"]["replicas"] == 3
    assert docs["Deployment", "api"]["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":1.2.0")
