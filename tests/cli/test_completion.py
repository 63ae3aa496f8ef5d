"""Shell completion (Typer's): the scripts for bash, zsh and fish, asked for a
command name the way each shell asks."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.cli import clean_env, run_cli

pytestmark = pytest.mark.timeout(60)

BIN = str(Path(sys.executable).parent)  # where the nettools command is


def script(shell: str) -> str:
    """``nettools --show-completion SHELL``: what --install-completion installs."""
    # Typer finds the shell it runs under; this variable has it take the one named.
    env = clean_env({"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"})
    done = subprocess.run([f"{BIN}/nettools", "--show-completion", shell], capture_output=True,
                          text=True, timeout=30, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def run_shell(shell: str, code: str, tmp_path: Path) -> str:
    program = shutil.which(shell)
    if program is None:
        pytest.skip(f"{shell} is not installed (make system-deps)")
    env = clean_env({"PATH": BIN + os.pathsep + os.environ["PATH"]})
    done = subprocess.run([program, "-c", code], capture_output=True, text=True, timeout=30,
                          env=env, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_bash_completes_command_names(tmp_path):
    (tmp_path / "completion.bash").write_text(script("bash"))
    out = run_shell("bash", "source ./completion.bash; "
                    "for words in 'nettools ec' 'nettools zmq p' 'nettools echo --metr'; do "
                    "  COMP_WORDS=($words); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); "
                    "  _nettools_completion nettools; echo \"${COMPREPLY[*]}\"; done",
                    tmp_path)  # fmt: skip
    assert out.splitlines() == ["echo", "proxy", "--metrics"]


def test_fish_completes_command_names(tmp_path):
    (tmp_path / "completion.fish").write_text(script("fish"))
    out = run_shell("fish", "source ./completion.fish; complete --do-complete 'nettools ec'; "
                    "complete --do-complete 'nettools feeds s'", tmp_path)  # fmt: skip
    assert [line.split("\t")[0] for line in out.splitlines()] == ["echo", "serve"]


def test_zsh_completes_command_names(tmp_path):
    # zsh's completion system only runs inside a completion widget: its two
    # functions the script calls are stood in for, the script itself runs as is.
    (tmp_path / "completion.zsh").write_text(script("zsh"))
    out = run_shell("zsh", "compdef() { :; }; _arguments() { print -r -- \"$@\"; }; "
                    "source ./completion.zsh; words=(nettools ec); CURRENT=2; "
                    "_nettools_completion", tmp_path)  # fmt: skip
    assert out.strip() == "*: :((\"echo\":\"Echo back what clients send.\"))"


def test_install_completion_is_offered():
    res = run_cli("--help")
    assert "--install-completion" in res.stdout and "--show-completion" in res.stdout
