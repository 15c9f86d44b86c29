"""Fixtures shared by the training tests."""

import subprocess
import sys

import pytest


@pytest.fixture
def train_cli():
    """Runs `python -m kerasgen.train <flags>` in `cwd` in a fresh process (inheriting this
    process's environment) and returns the `subprocess.CompletedProcess`."""

    def run(*flags, cwd):
        return subprocess.run(
            [sys.executable, "-m", "kerasgen.train", *flags],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=cwd,
        )

    return run
