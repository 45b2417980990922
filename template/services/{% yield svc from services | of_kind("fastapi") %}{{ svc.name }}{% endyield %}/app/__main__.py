"""Run the API with uvicorn: ``python -m app [--reload]``, port from $PORT."""

import os
import sys

import uvicorn

if __name__ == "__main__":
    uvicorn.run(
        "app.main:app",
        host=os.environ.get("HOST", "0.0.0.0"),
        port=int(os.environ.get("PORT", "8000")),
        reload="--reload" in sys.argv,
        proxy_headers=True,
    )
