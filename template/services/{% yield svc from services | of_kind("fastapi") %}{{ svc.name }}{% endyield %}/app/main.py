"""The FastAPI application."""

import os

from fastapi import FastAPI

SERVICE_NAME = os.environ.get("SERVICE_NAME", "api")

app = FastAPI(title=SERVICE_NAME)


@app.get("/health")
@app.get("/api/v1/health")
async def health() -> dict[str, str]:
    """Liveness: answers without touching any backing service."""
    return {"status": "ok", "service": SERVICE_NAME}
