"""Every upstream image a project names, and the commands our files run inside each.

Images come from the compose files (``image:``, development and production
combinations, as Compose resolves them) and from the Dockerfiles they build
(every ``FROM`` with its build arguments filled in, stage names left out).
The commands are the first word of each healthcheck, command and entrypoint
that runs inside an image, traced back through a Dockerfile's stages to the
upstream image the target stage starts from.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockerfile_parse import DockerfileParser

from stackplate.compose import resolved

COMBINATIONS = ("development", "production")


@dataclass
class ImageUse:
    """An upstream image, who uses it, and the commands our files run inside it."""

    reference: str
    used_by: set[str] = field(default_factory=set)
    tools: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Stage:
    parent: str  # an upstream image, or an earlier stage's name
    name: str
    instructions: tuple[tuple[str, str], ...]  # (instruction, value) after the FROM


def images_of(project: Path) -> list[ImageUse]:
    """The project's upstream images, in name order."""
    uses: dict[str, ImageUse] = {}

    def use(reference: str, who: str, tools: set[str]) -> None:
        entry = uses.setdefault(reference, ImageUse(reference))
        entry.used_by.add(who)
        entry.tools |= tools

    for combination in COMBINATIONS:
        for name, service in resolved(project, combination).get("services", {}).items():
            tools = _healthcheck_tools(service.get("healthcheck"))
            build = service.get("build")
            if not build:
                use(service["image"], f"compose service {name}", tools)
                continue
            stages = dockerfile_stages(
                Path(build["context"]) / build.get("dockerfile", "Dockerfile"), build.get("args") or {}
            )
            dockerfile = f"{Path(build['context']).relative_to(project.resolve())}/Dockerfile"
            names = {stage.name for stage in stages}
            for stage in stages:
                if stage.parent not in names:
                    use(stage.parent, dockerfile, set())
            target = build.get("target") or stages[-1].name
            root, run = _trace(stages, target)
            use(root, f"compose service {name} ({target})", tools | run)
    return [uses[reference] for reference in sorted(uses)]


def dockerfile_stages(dockerfile: Path, build_args: dict[str, str]) -> list[Stage]:
    """The Dockerfile's stages, each FROM resolved with the build arguments."""
    parser = DockerfileParser(fileobj=dockerfile.open(), env_replace=True, build_args=build_args)
    parents = iter(parser.parent_images)  # FROM images with ARGs filled in, in order
    stages: list[Stage] = []
    current: list[tuple[str, str]] | None = None
    for entry in parser.structure:
        if entry["instruction"] == "FROM":
            words = entry["value"].split()
            alias = words[2] if len(words) >= 3 and words[1].lower() == "as" else str(len(stages))
            current = []
            stages.append(Stage(next(parents), alias, ()))
        elif current is not None:
            current.append((entry["instruction"], entry["value"]))
            stages[-1] = Stage(stages[-1].parent, stages[-1].name, tuple(current))
    return stages


def _trace(stages: list[Stage], target: str) -> tuple[str, set[str]]:
    """The upstream image ``target`` starts from, and the commands its image runs."""
    by_name = {stage.name: stage for stage in stages}
    stage = by_name[target]
    tools: set[str] = set()
    chain = []
    while True:
        chain.append(stage)
        if stage.parent not in by_name:
            break
        stage = by_name[stage.parent]
    # Packages our Dockerfile installs itself are not asked of the upstream image.
    installed = {
        word.split("=")[0]
        for candidate in chain
        for name, value in candidate.instructions
        if name == "RUN" and "apt-get install" in value
        for word in value.split("apt-get install", 1)[1].split("&&")[0].split()
        if not word.startswith("-")
    }
    # The nearest CMD, ENTRYPOINT and HEALTHCHECK win, as in the built image.
    for instruction in ("CMD", "ENTRYPOINT", "HEALTHCHECK"):
        for candidate in chain:
            values = [value for name, value in candidate.instructions if name == instruction]
            if values:
                tools |= _command_tools(
                    values[-1].removeprefix("CMD ").strip() if instruction == "HEALTHCHECK" else values[-1]
                )
                break
    return chain[-1].parent, tools - installed


def _command_tools(value: str) -> set[str]:
    """The program(s) a CMD/ENTRYPOINT value runs: the first word, and a shell's command."""
    value = value.strip()
    if value.startswith("--"):  # HEALTHCHECK options before CMD
        value = value.split(" CMD ", 1)[-1]
    try:
        words = json.loads(value) if value.startswith("[") else ["sh", "-c", value]
    except json.JSONDecodeError:
        words = shlex.split(value)
    return _words_tools(words)


def _words_tools(words: list[str]) -> set[str]:
    if not words:
        return set()
    tools = {Path(words[0]).name}
    if Path(words[0]).name in ("sh", "bash") and len(words) >= 3 and words[1] == "-c":
        tools |= _shell_tools(words[2])
    return tools


_SUBSTITUTION = re.compile(r"\$\(([^()]*)\)")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def _shell_tools(script: str) -> set[str]:
    """The first word of each simple command in a shell line.

    Understands what our files write: ``a && exec b``, ``a | b``, ``; ||``,
    ``NAME=value cmd`` and command substitutions ``$(cmd)``, whose commands run too.
    """
    tools = set()
    for inner in _SUBSTITUTION.findall(script):
        tools |= _shell_tools(inner)
    script = _SUBSTITUTION.sub("x", script)
    for part in re.split(r"&&|\|\||[;|]", script):
        words = shlex.split(part)
        while words and (words[0] in ("exec", "env") or _ASSIGNMENT.match(words[0])):
            words = words[1:]
        if words:
            tools.add(Path(words[0]).name)
    return tools


def _healthcheck_tools(healthcheck: dict[str, Any] | None) -> set[str]:
    test = (healthcheck or {}).get("test") or []
    if not test or test[0] == "NONE":
        return set()
    if test[0] == "CMD-SHELL":
        return {"sh", *_shell_tools(" ".join(test[1:]))}
    return _words_tools(test[1:] if test[0] == "CMD" else test)
