"""On a terminal a server says where to connect in words; scripts keep the JSON
ready line (stdout that is not a terminal, --ready-file, or --ready-json)."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys

import pytest
from helpers.cli import clean_env

pytestmark = pytest.mark.timeout(60)


def first_line_on_a_tty(*args: str, tmp_path=None) -> str:
    """Start ``nettools ARGS`` with stdout on a pseudo-terminal; its first line."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "nettools", *args], stdin=subprocess.DEVNULL,
                            stdout=slave, stderr=subprocess.PIPE, env=clean_env())  # fmt: skip
    os.close(slave)
    data = b""
    try:
        for _ in range(1000):
            readable, _, _ = select.select([master], [], [], 20)
            assert readable, f"no line within 20s: {data!r}"
            data += os.read(master, 4096)
            if b"\n" in data:
                break
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
        os.close(master)
    return data.split(b"\n")[0].decode().rstrip("\r")


def test_a_person_reads_where_to_connect(tmp_path):
    ready_file = tmp_path / "ready"
    line = first_line_on_a_tty("echo", "--ready-file", str(ready_file))
    match = re.fullmatch(r"echo listening on 127\.0\.0\.1:(\d+)", line)
    assert match, line
    event = json.loads(ready_file.read_text())  # a script still gets JSON
    assert event["address"] == f"127.0.0.1:{match.group(1)}"


def test_a_web_server_says_what_to_open():
    line = first_line_on_a_tty("wschat", "--port", "0", "--metrics", "127.0.0.1:0")
    assert re.fullmatch(r"wschat: open http://127\.0\.0\.1:\d+/ "
                        r"\(metrics at http://127\.0\.0\.1:\d+/metrics\)", line), line


def test_ready_json_keeps_the_json_line_on_a_terminal():
    event = json.loads(first_line_on_a_tty("echo", "--ready-json"))
    assert event["event"] == "listening" and event["service"] == "echo"
