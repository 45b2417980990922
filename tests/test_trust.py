"""Plain ``copier copy`` needs --trust (our Jinja extensions run Python); pytest-copie always trusts."""

from __future__ import annotations

from conftest import copier_cli


def test_copy_without_trust_stops_with_copiers_message(template_copy, tmp_path) -> None:
    result = copier_cli("copy", "--defaults", str(template_copy), "out", cwd=tmp_path)
    assert result.returncode != 0
    assert "Template uses potentially unsafe features: jinja_extensions, tasks." in result.stderr
    assert "--trust" in result.stderr
    assert not (tmp_path / "out").exists()


def test_copy_with_trust_renders(template_copy, tmp_path) -> None:
    result = copier_cli("copy", "--trust", "--defaults", str(template_copy), "out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out/docker-compose.yml").is_file()
    assert (tmp_path / "out/services/api/Dockerfile").is_file()
