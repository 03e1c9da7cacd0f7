from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

from modelmon._cli import profile as cli_profile
from modelmon.profile import ReferenceProfile


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelmon")
    cli_profile.register(parser.add_subparsers(dest="command"))
    return parser


def _csv(tmp_path: Path) -> Path:
    data = load_breast_cancer(as_frame=True)
    df = data.frame.copy()
    df["size"] = np.where(df["mean radius"] > 14, "large", "small")
    df["proba"] = np.linspace(0.0, 1.0, len(df))
    path = tmp_path / "train.csv"
    df.to_csv(path, index=False)
    return path


def _run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    return int(args.func(args))


def test_profile_from_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, out = _csv(tmp_path), tmp_path / "ref.json"
    code = _run(
        ["profile", str(src), "--prediction-column", "target", "--confidence-column", "proba",
         "--categorical", "size", "--task", "classification", "-o", str(out)]
    )  # fmt: skip
    assert code == 0
    p = ReferenceProfile.load(out)
    assert len(p.features) == 31 and "target" not in p.features
    assert p.features["size"].kind == "categorical"
    assert p.outputs["prediction"].categories == ("1", "0", "__other__")
    assert p.outputs["confidence"].kind == "numeric"
    data = load_breast_cancer()
    col = data.data[:, 0]
    assert p.features["mean radius"].mean == pytest.approx(col.mean())
    assert "wrote" in capsys.readouterr().out


def test_profile_from_parquet_matches_csv(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    import pandas as pd

    src = _csv(tmp_path)
    pq_path = tmp_path / "train.parquet"
    pd.read_csv(src).to_parquet(pq_path)
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert _run(["profile", str(src), "--prediction-column", "target", "-o", str(a)]) == 0
    assert _run(["profile", str(pq_path), "--prediction-column", "target", "-o", str(b)]) == 0
    pa, pb = ReferenceProfile.load(a), ReferenceProfile.load(b)
    assert pa.features == pb.features and pa.outputs == pb.outputs


def test_missing_column_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _run(
        [
            "profile",
            str(_csv(tmp_path)),
            "--prediction-column",
            "nope",
            "-o",
            str(tmp_path / "x.json"),
        ]
    )
    assert code == 2
    assert "column 'nope' not found" in capsys.readouterr().err
