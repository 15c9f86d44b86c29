"""Fields of the configuration dataclasses (`TrainConfig`, `DecodingConfig`), documented once.

`option` declares a field with its default, its documentation (the `--help` text of the flag
`kerasgen.config_flags` generates from it) and its checks; `check_fields` applies the checks,
so the library and the command line reject the same values with the same one-line message.
"""

import dataclasses
import math

from kerasgen.errors import UserInputError


def option(default, help, *, choices=False, minimum=None, maximum=None, flag=True):
    """A configuration field.

    Args:
        default: the default value.
        help: one sentence for `--help`.
        choices: True when the valid values come from the code that accepts them (the
            dataclass's `valid_values(name)`); a tuple lists them here.
        minimum, maximum: the smallest and largest valid numbers (None: no bound).
        flag: False for fields that are not command-line flags.
    """
    return dataclasses.field(
        default=default,
        metadata=dict(help=help, choices=choices, minimum=minimum, maximum=maximum, flag=flag),
    )


def valid_choices(config_class, field):
    """The valid values of a field declared with `choices`, or None."""
    choices = field.metadata.get("choices")
    if not choices:
        return None
    return list(config_class.valid_values(field.name)) if choices is True else list(choices)


def check_fields(config):
    """Raises `UserInputError` naming the first field of `config` whose value is invalid:
    not one of its choices, not a finite number, or outside its bounds. None passes."""
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if value is None:
            continue
        valid = valid_choices(type(config), field)
        if valid is not None:
            # bool is an int: True must not pass for 1 (or 1 for True).
            if not any(type(value) is type(choice) and value == choice for choice in valid):
                raise UserInputError(
                    f"{field.name}={value!r} is not valid; valid values: "
                    f"{', '.join(map(str, valid))}"
                )
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise UserInputError(f"{field.name} must be a finite number, not {value}")
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        minimum, maximum = field.metadata.get("minimum"), field.metadata.get("maximum")
        if minimum is not None and value < minimum:
            raise UserInputError(f"{field.name} must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise UserInputError(f"{field.name} must be at most {maximum}, got {value}")
