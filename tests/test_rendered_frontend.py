"""Every rendered react-vite service passes its own lint, type check, vitest suite and production build."""

from __future__ import annotations

import copier
import pytest
import yaml
from matrix import MATRIX, services_of
from reports import vitest_counts

from stackplate.native import npm_ci, run_checked

# The default frontend; renamed ones are built and driven in a browser by test_boot.py.
RENDERS = ("defaults",)


@pytest.mark.parametrize("answers_name", RENDERS)
def test_rendered_frontend_checks_pass(answers_name, template_copy, tmp_path) -> None:
    answers = MATRIX[answers_name]
    project = tmp_path / "project"
    copier.run_copy(str(template_copy), str(project), data=answers, defaults=True, unsafe=True, quiet=True)
    names = [s["name"] for s in services_of(answers) if s["kind"] == "react-vite"]
    assert names, f"{answers_name} renders no react-vite service"
    for name in names:
        service_dir = project / "services" / name
        npm_ci(service_dir)
        for script in ("lint", "typecheck"):
            run_checked(["npm", "run", "--silent", script], service_dir, {}, f"{name}: npm run {script}")
        report = tmp_path / f"{name}-vitest.json"
        test_command = [
            "npm",
            "test",
            "--",
            "--reporter=default",
            "--reporter=json",
            f"--outputFile.json={report}",
        ]
        run_checked(test_command, service_dir, {"CI": "1"}, f"{name}: npm test")
        vitest_counts(report).assert_all_passed(f"{name}: vitest")
        run_checked(["npm", "run", "build"], service_dir, {}, f"{name}: npm run build")
        index = (service_dir / "dist" / "index.html").read_text()
        project_name = yaml.safe_load((project / ".copier-answers.yml").read_text())["project_name"]
        assert f"<title>{project_name}</title>" in index and "/assets/" in index
