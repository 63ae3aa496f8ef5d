"""recipes/zmq_pipeline.py: in one process, and as sink, ventilator and worker processes."""

from __future__ import annotations

import json

import pytest
from helpers.cli import last_json
from helpers.recipes import Recipe, run_recipe

pytestmark = pytest.mark.timeout(90)


def test_pipeline_in_one_process_spreads_tasks_over_every_worker():
    result = run_recipe(
        "zmq_pipeline.py", "--tasks", "400", "--workers", "3", "--port", "0", timeout=60
    )
    assert result.returncode == 0, result.stderr
    summary = last_json(result.stdout)
    assert summary["ok"] and summary["results"] == 400
    assert summary["wrong"] == summary["duplicates"] == 0
    assert len(summary["workers"]) == 3 and sum(summary["workers"].values()) == 400
    assert all(n > 0 for n in summary["workers"].values())


def test_pipeline_as_processes_over_tcp_and_ipc(tmp_path):
    """Sink on ipc://, ventilator on tcp:// port 0, two worker processes connecting to both."""
    tasks = 300
    with Recipe(
        "zmq_pipeline.py", "sink", "--bind", f"ipc://{tmp_path}/sink.ipc", "--tasks", str(tasks)
    ) as sink:
        sink_line = json.loads(sink.proc.stdout.readline())
        assert sink_line["event"] == "listening" and sink_line["service"] == "zmq-sink"
        with Recipe(
            "zmq_pipeline.py",
            "ventilator",
            "--bind",
            "tcp://127.0.0.1:0",
            "--tasks",
            str(tasks),
            "--workers",
            "2",
        ) as vent:
            vent_line = json.loads(vent.proc.stdout.readline())
            assert vent_line["service"] == "zmq-ventilator"
            workers = [
                Recipe(
                    "zmq_pipeline.py",
                    "worker",
                    "--tasks-from",
                    vent_line["address"],
                    "--results-to",
                    sink_line["address"],
                    "--concurrency",
                    "4",
                )
                for _ in range(2)
            ]
            try:
                code, out, err = sink.wait(timeout=60)
                assert code == 0, err
                summary = last_json(out)
                assert summary["ok"] and summary["results"] == tasks
                assert len(summary["workers"]) == 2  # the ventilator waited for both
                assert all(n > 0 for n in summary["workers"].values())
                code, _out, err = vent.wait(timeout=20)
                assert code == 0, err
            finally:
                stopped = [w.stop() for w in workers]
                for w in workers:
                    w.__exit__(None, None, None)
            assert [code for code, _, _ in stopped] == [0, 0]  # SIGTERM ends a worker cleanly
            assert not any("Traceback" in err for _, _, err in stopped)


def test_pipeline_reports_bad_input_in_one_line():
    result = run_recipe("zmq_pipeline.py", "--tasks", "0", timeout=20)
    assert result.returncode == 2 and "must be at least 1" in result.stderr
    result = run_recipe("zmq_pipeline.py", "worker", "--results-to", "tcp://x:1", timeout=20)
    assert result.returncode == 2 and "worker needs --tasks-from" in result.stderr
    result = run_recipe(
        "zmq_pipeline.py", "worker", "--tasks-from", "nonsense", "--results-to", "x", timeout=20
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "zmq_pipeline: Invalid argument (addr='nonsense')"
    ]
