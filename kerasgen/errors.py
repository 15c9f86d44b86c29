"""The error the command-line entry points report as one line instead of a traceback."""


class UserInputError(ValueError):
    """Bad input from the user (a flag, a file, a folder); the message is one line naming it."""
