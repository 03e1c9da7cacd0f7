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


def test_exclude_and_target_keep_id_and_label_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import pandas as pd

    src = _csv(tmp_path)
    frame = pd.read_csv(src)
    frame.insert(0, "id", range(len(frame)))
    frame.to_csv(src, index=False)
    out = tmp_path / "ref.json"
    argv = ["profile", str(src), "--target", "target", "--exclude", "id,proba", "-o", str(out)]
    assert _run(argv) == 0
    p = ReferenceProfile.load(out)
    assert {"id", "target", "proba"}.isdisjoint(p.features)
    assert len(p.features) == 31 and p.outputs == {}
    assert capsys.readouterr().err == ""  # not a terminal: no progress bar


@pytest.mark.parametrize("memory", ["256", "0"])  # read once into memory / streamed twice
def test_csv_equals_the_builder_on_the_whole_frame(tmp_path: Path, memory: str) -> None:
    import pandas as pd

    from modelmon.profile_builder import build_profile

    src, out = _csv(tmp_path), tmp_path / "ref.json"
    blocks = (cli_profile.BLOCK_BYTES, cli_profile.READ_BLOCK_BYTES)
    cli_profile.BLOCK_BYTES = cli_profile.READ_BLOCK_BYTES = 1 << 14  # many small blocks
    try:
        argv = ["profile", str(src), "--prediction-column", "target", "--exclude", "proba"]
        assert _run([*argv, "--memory-mb", memory, "-o", str(out)]) == 0
    finally:
        cli_profile.BLOCK_BYTES, cli_profile.READ_BLOCK_BYTES = blocks
    read = ReferenceProfile.load(out)
    whole = build_profile(lambda: [pd.read_csv(src)], prediction="target", exclude=["proba"])
    assert read.features == whole.features and read.outputs == whole.outputs
    assert "proba" not in read.features and "size" in read.features


def test_sample_is_uniform_sized_and_seeded(tmp_path: Path) -> None:
    src = _csv(tmp_path)
    outs = [tmp_path / f"s{i}.json" for i in range(3)]
    for out, seed in zip(outs, (1, 1, 2), strict=True):
        argv = ["profile", str(src), "--sample", "200", "--seed", str(seed), "-o", str(out)]
        assert _run(argv) == 0
    a, b, c = (ReferenceProfile.load(o) for o in outs)
    assert a.features["mean radius"].count == 200
    assert a.features == b.features  # same seed, same sample
    assert a.features != c.features
    full = load_breast_cancer().data[:, 0]
    # A uniform sample's mean: within 4 standard errors of the population mean.
    se = full.std() / np.sqrt(200) * np.sqrt(1 - 200 / full.size)
    assert abs(a.features["mean radius"].mean - full.mean()) < 4 * se


def test_dask_engine_equals_local(tmp_path: Path) -> None:
    pytest.importorskip("dask.dataframe")
    src = _csv(tmp_path)
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    base = ["profile", str(src), "--prediction-column", "target", "--exclude", "proba"]
    assert _run([*base, "-o", str(a)]) == 0
    assert _run([*base, "--engine", "dask", "-o", str(b)]) == 0
    pa, pb = ReferenceProfile.load(a), ReferenceProfile.load(b)
    assert pa.features == pb.features and pa.outputs == pb.outputs


@pytest.mark.parametrize(
    ("extra", "labels", "absent"),
    [
        ([], ("reading", "profiling"), "pass 1/2"),  # fits in memory: read once
        (["--memory-mb", "0"], ("pass 1/2", "pass 2/2"), "reading"),  # streamed twice
    ],
)
def test_progress_bar_shows_on_a_terminal_only(
    tmp_path: Path, extra: list[str], labels: tuple[str, ...], absent: str
) -> None:
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import sys
    import termios

    pytest.importorskip("tqdm")
    src, out = _csv(tmp_path), tmp_path / "ref.json"
    argv = [sys.executable, "-m", "modelmon", "profile", str(src), *extra, "-o", str(out)]
    leader, follower = pty.openpty()
    # A real terminal has a size; a fresh pty is 0 x 0, where tqdm draws a 0-column bar.
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    try:
        done = subprocess.run(argv, stderr=follower, stdout=subprocess.PIPE, timeout=300)
    finally:
        os.close(follower)
    chunks = []
    try:
        while chunk := os.read(leader, 65536):
            chunks.append(chunk)
    except OSError:  # EIO: the terminal's other end is closed and drained
        pass
    finally:
        os.close(leader)
    assert done.returncode == 0
    shown = b"".join(chunks).decode(errors="replace")
    assert all(label in shown for label in labels) and absent not in shown, shown
    piped = subprocess.run(argv, capture_output=True, timeout=300)
    assert piped.returncode == 0 and piped.stderr == b""
