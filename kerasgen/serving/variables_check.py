"""Checks that a SavedModel's variables can be restored: every value read back from its files.

The op checker reads only `saved_model.pb`; an export whose variable files were truncated (a
full disk, an interrupted copy) passes it and then fails when TensorFlow Serving restores it.
"""

import glob
import os

import tensorflow as tf

from kerasgen.errors import UserInputError


class VariablesCheckError(UserInputError):
    """A SavedModel's variables cannot be restored."""


def check_variables(export_path):
    """Reads every variable of the SavedModel at `export_path` back from its checkpoint files.

    Returns:
        The number of values read.

    Raises:
        VariablesCheckError: one line naming the file that cannot be read.
    """
    folder = os.path.join(export_path, "variables")
    index = os.path.join(folder, "variables.index")
    if not os.path.exists(index):
        raise VariablesCheckError(f"{index}: missing, so the variables cannot be restored")
    try:
        reader = tf.train.load_checkpoint(os.path.join(folder, "variables"))
        names = sorted(reader.get_variable_to_shape_map())
    except (tf.errors.OpError, ValueError, IndexError) as error:
        raise VariablesCheckError(f"{index}: unreadable ({_reason(error)})") from None
    # The reader's errors ("Read less bytes than requested") name neither file nor variable.
    data_files = ", ".join(sorted(glob.glob(os.path.join(folder, "variables.data-*"))))
    for name in names:
        try:
            reader.get_tensor(name)
        except (tf.errors.OpError, ValueError, IndexError) as error:
            raise VariablesCheckError(
                f"{data_files or folder}: truncated or corrupt, variable {name} cannot be "
                f"read ({_reason(error)})"
            ) from None
    return len(names)


def _reason(error):
    message = error.message if isinstance(error, tf.errors.OpError) else str(error)
    return message.strip().splitlines()[0] if message.strip() else type(error).__name__
