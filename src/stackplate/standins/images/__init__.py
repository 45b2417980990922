"""One module per upstream image that can be stood in, each knowing its own contract.

A module names the repositories it stands in for (``REPOSITORIES``), the tools
our files run inside the real image and where the upstream image is known to
ship them (``TOOLS``), and how to build the stand-in (``prepare``).
"""

from __future__ import annotations

from types import ModuleType

from stackplate.standins.images import (
    nginx_unprivileged,
    node,
    pgadmin4,
    postgres,
    python,
    rabbitmq,
    redis,
    redis_commander,
    uv,
)

RECIPES: tuple[ModuleType, ...] = (
    postgres,
    redis,
    rabbitmq,
    nginx_unprivileged,
    python,
    node,
    uv,
    redis_commander,
    pgadmin4,
)

# Upstream images that no package here can stand in for honestly, and why.
CANNOT_STAND_IN = {
    "ollama/ollama": "no Ollama server is packaged in Debian, PyPI or npm",
}


def recipe_for(repository: str) -> ModuleType | None:
    return next((recipe for recipe in RECIPES if repository in recipe.REPOSITORIES), None)
