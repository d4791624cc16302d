"""What a run writes on standard error: a bar on a terminal (its metrics name their round), one
plain line per evaluation elsewhere, nothing with quiet; other reports through ``logging``."""

from __future__ import annotations

import io
import logging
import re
import subprocess
import sys

import pytest
from data_helpers import synthetic_images
from torch import nn

import mosaic_fast as mf
from mosaic_fast.engine import experiment

IMAGES = synthetic_images()
SMALL = dict(nodes=4, K=2, degree=2, rounds=6, eval_every=2, local_steps=1, batch_size=8)
LINE = re.compile(
    r"^<data> K=2 round (\d+)/6: accuracy \d\.\d{4} \(avg model \d\.\d{4}, consensus \S+\) "
    r"sim \S+s elapsed \d+:\d\d:\d\d eta (\?|\d+:\d\d:\d\d)$"
)


def mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.ReLU(), nn.Linear(8, 4))


def run(quiet: bool = False, **kw):
    exp = mf.Experiment(
        model=mlp,
        train=(IMAGES.x_train, IMAGES.y_train),
        test=(IMAGES.x_test, IMAGES.y_test),
        **{**SMALL, **kw},
    )
    return exp.run(quiet=quiet)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_off_a_terminal_one_plain_line_per_evaluation(monkeypatch):
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    run()
    lines = err.getvalue().splitlines()
    assert "\r" not in err.getvalue()
    matches = [LINE.match(line) for line in lines]
    assert all(matches), lines
    assert [int(m.group(1)) for m in matches] == [0, 2, 4, 6]
    assert matches[0].group(2) == "?" and matches[-1].group(2) == "0:00:00"


def test_quiet_writes_nothing(monkeypatch):
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    run(quiet=True)
    assert err.getvalue() == ""


def test_on_a_terminal_the_bar_says_which_round_its_metrics_are_from(monkeypatch):
    err = Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    run()
    text = err.getvalue()
    assert "\r" in text  # the bar's refreshes
    assert not any(LINE.match(line) for line in text.splitlines())
    final = text.rsplit("\r", 1)[-1]
    assert "6/6" in final and "(round 6)" in final, final
    assert "(round 0)" in text  # shown from the start, with its round


def test_postfix_names_the_round():
    rec = {"metric": "accuracy", "node_mean": 0.086, "avg_model": 0.1, "consensus_distance": 0.5}
    assert experiment._postfix({**rec, "round": 0}).endswith("(round 0)")


def test_the_cli_logs_plain_lines_to_a_file(tmp_path):
    """A real process with standard error redirected to a file: one line per evaluation (not the
    bar's endless line), and nothing but those lines and the results."""
    log = tmp_path / "run.log"
    with log.open("w") as err:
        done = subprocess.run(
            [sys.executable, "-m", "mosaic_fast", "run", "--dataset", "test_logs:data",
             "--model", "test_logs:mlp", "--nodes", "4", "--K", "2", "--degree", "2",
             "--rounds", "6", "--eval-every", "2", "--local-steps", "1", "--batch-size", "8",
             "--out", str(tmp_path / "r")],
            stdout=subprocess.PIPE, stderr=err, text=True, timeout=600,
            cwd=str(tmp_path), env={**_env(), "PYTHONPATH": _tests_path()},
        )  # fmt: skip
    assert done.returncode == 0, log.read_text()
    lines = log.read_text().splitlines()
    assert len(lines) == 4, lines
    assert all(re.match(r"^test_logs:data K=2 round \d/6: accuracy ", ln) for ln in lines), lines


def data():
    return (IMAGES.x_train, IMAGES.y_train), (IMAGES.x_test, IMAGES.y_test)


def _tests_path() -> str:
    from pathlib import Path

    here = str(Path(__file__).resolve().parent)
    return here


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def test_tracker_warnings_go_through_logging(tmp_path, caplog):
    """A user's logging configuration sees the tracker's warning (logger ``mosaic_fast...``)."""

    class Broken:
        name = "broken"

        def start(self, run):
            raise RuntimeError("no")

        def log(self, scalars, step):
            pass

        def finish(self, status, figures):
            pass

    exp = mf.Experiment(
        model=mlp,
        train=(IMAGES.x_train, IMAGES.y_train),
        test=(IMAGES.x_test, IMAGES.y_test),
        trackers=[Broken()],
        **SMALL,
    )
    with caplog.at_level(logging.WARNING):
        exp.run(tmp_path / "r", quiet=True)
    (record,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert record.name == "mosaic_fast.tracking"
    assert record.getMessage().startswith(
        "tracker broken failed (start, round 0): RuntimeError: no"
    )


@pytest.mark.parametrize("seconds, text", [(0, "0:00:00"), (61.4, "0:01:01"), (3725, "1:02:05")])
def test_clock(seconds, text):
    assert experiment._clock(seconds) == text
