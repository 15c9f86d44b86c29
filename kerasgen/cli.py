"""What every command-line entry point shares: quiet TensorFlow logs, one-line errors."""

import os
import sys


def quiet_tensorflow_logs():
    """Hides TensorFlow's C++ info and warning lines; must run before TensorFlow is imported."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def run_reporting_user_errors(program, function):
    """Runs `function()`; a `UserInputError` (or its subclasses) becomes one line on stderr and
    exit status 1, so scripts see a failure and people see the cause, not a traceback."""
    from kerasgen.errors import UserInputError

    try:
        return function()
    except UserInputError as error:
        print(f"{program}: error: {error}", file=sys.stderr)
        sys.exit(1)
