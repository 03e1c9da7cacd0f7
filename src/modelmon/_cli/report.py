"""``modelmon report``: the visual drift report as one self-contained HTML file.

modelmon report --reference reference.json --current http://127.0.0.1:8000/metrics -o report.html
modelmon report --reference reference.json --current live.csv --model app:predict -o report.html
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError, MissingExtraError
from ._help import examples


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``report`` subcommand to an ``argparse`` subparsers object."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "report",
        help="write the HTML drift report (reference vs. current distributions)",
        description=(
            "Write a self-contained HTML drift report (works offline) comparing a reference "
            "profile with the current state of a model: a /metrics URL of a running service, "
            "a multi-process state directory, or a CSV/Parquet file of live rows."
        ),
        epilog=examples(
            "modelmon report --reference reference.json "
            "--current http://127.0.0.1:8000/metrics -o report.html",
            "modelmon report --reference models:/credit@champion --current tonight.csv "
            "--model score.py:predict --label-column label -o report.html",
        ),
    )
    p.add_argument(
        "--reference",
        required=True,
        help="reference profile: a JSON path, runs:/<run_id>/<path> or models:/<name>@<alias>",
    )
    p.add_argument("--current", required=True, help="/metrics URL, state directory, or data file")
    p.add_argument("-o", "--output", required=True, help="where to write the HTML file")
    p.add_argument(
        "--model",
        default=None,
        help="module:function or file.py:function scoring rows of a data file",
    )
    p.add_argument("--prediction-column", default=None, help="data file: predictions column")
    p.add_argument("--label-column", default=None, help="data file: true labels column")
    p.add_argument(
        "--task",
        choices=("classification", "regression"),
        default=None,
        help="data file: the model's task, as for `modelmon profile`",
    )
    p.add_argument("--model-name", default=None, help="which monitor (model label) to report")
    p.add_argument("--model-version", default=None, help="which monitor (version label)")
    p.add_argument("--namespace", default="modelmon", help="metric name prefix")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Write the report; return the process exit code."""
    from ..report import render
    from ..report.sources import from_source, load_predict, load_reference

    try:
        profile = load_reference(args.reference)
        predict = load_predict(args.model) if args.model else None
        snap = from_source(
            args.current,
            profile,
            predict=predict,
            prediction_column=args.prediction_column,
            label_column=args.label_column,
            model=args.model_name,
            version=args.model_version,
            namespace=args.namespace,
            task=args.task,
        )
        page = render(snap)
        Path(args.output).write_text(page, encoding="utf-8")
    except (OSError, ConfigurationError, MissingExtraError) as exc:
        print(f"modelmon report: error: {exc}", file=sys.stderr)
        return 2
    drifted = ", ".join(m.name for m in snap.drifted) or "none"
    print(
        f"wrote {args.output} ({len(page) / 1024:.0f} KiB): {snap.model} {snap.version}, "
        f"{len(snap.features)} features, drifted: {drifted}"
    )
    return 0
