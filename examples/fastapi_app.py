"""A breast-cancer classifier served by FastAPI and monitored by modelmon.

The app ships inside the package, because ``modelmon demo`` serves it from an installed
wheel too: read it in ``src/modelmon/_cli/demo_app/fastapi_app.py``. This module
re-exports it, so ``uvicorn examples.fastapi_app:app`` runs it from a checkout.
"""

from __future__ import annotations

from modelmon._cli.demo_app.fastapi_app import (
    MODEL,
    MODEL_NAME,
    MODEL_VERSION,
    Feedback,
    TrainedModel,
    app,
    predict,
    predict_proba,
    train,
)

__all__ = [
    "MODEL",
    "MODEL_NAME",
    "MODEL_VERSION",
    "Feedback",
    "TrainedModel",
    "app",
    "predict",
    "predict_proba",
    "train",
]
