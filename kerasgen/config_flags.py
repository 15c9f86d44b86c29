"""Command-line flags generated from configuration dataclasses (`TrainConfig`, `DecodingConfig`).

A field is written once, with its documentation and checks (`kerasgen.config_fields.option`);
this module defines one absl flag per field (help text, default, enum choices and
lower bound from the field) and reads the flags back into keyword arguments. Flags of
`None`-defaulted fields default to None, so "not given" stays distinguishable.

    define_flags(TrainConfig)                  # every field that is a flag
    define_flags(DecodingConfig, names=["temperature"], defaults={"temperature": 0.0})
    values = flag_values(TrainConfig, only_present=True)
"""

import dataclasses
import json
import math
import os
import types

from absl import flags

from kerasgen.config_fields import valid_choices
from kerasgen.errors import UserInputError

FLAGS = flags.FLAGS


def _flag_fields(config_class, names=None):
    fields = [
        field for field in dataclasses.fields(config_class) if field.metadata.get("flag", True)
    ]
    if names is not None:
        by_name = {field.name: field for field in fields}
        fields = [by_name[name] for name in names]
    return fields


def _base_type(annotation):
    """`int | None` → int; `bool | str` → (bool, str)."""
    if isinstance(annotation, types.UnionType):
        members = tuple(a for a in annotation.__args__ if a is not type(None))
        return members[0] if len(members) == 1 else members
    return annotation


def _choice_text(value):
    return str(value).lower() if isinstance(value, bool) else str(value)


def define_flags(config_class, *, names=None, defaults=None, helps=None):
    """Defines a flag per field of `config_class` (or of `names`, in that order).

    Args:
        config_class: a dataclass whose fields carry `help` (and optionally `choices`,
            `minimum`) metadata; `choices=True` asks `config_class.valid_values(name)`.
        names: the fields to define (default: every field that is a flag).
        defaults: `{name: value}` shown and used instead of the field's default.
        helps: `{name: text}` replacing a field's help text (a command's own wording).
    """
    defaults, helps = defaults or {}, helps or {}
    for field in _flag_fields(config_class, names):
        name = field.name
        default = defaults.get(name, field.default)
        help_text = helps.get(name, field.metadata.get("help", name))
        kind = _base_type(field.type)
        valid = valid_choices(config_class, field)
        minimum = field.metadata.get("minimum")
        maximum = field.metadata.get("maximum")
        if valid is not None:
            flags.DEFINE_enum(
                name,
                None if default is None else _choice_text(default),
                [_choice_text(value) for value in valid],
                help_text,
            )
        elif kind is bool:
            flags.DEFINE_boolean(name, default, help_text)
        elif kind is int:
            flags.DEFINE_integer(name, default, help_text, lower_bound=minimum, upper_bound=maximum)
        elif kind is float:
            # absl's bounds let NaN through (every comparison with it is false): the values
            # are checked for finiteness when read (`flag_values`, `check_finite_flags`).
            flags.DEFINE_float(name, default, help_text, lower_bound=minimum, upper_bound=maximum)
        elif kind is dict:
            flags.DEFINE_string(name, None, help_text)
        else:
            flags.DEFINE_string(name, default, help_text)


def _parse_choice(text, valid):
    for value in valid:
        if _choice_text(value) == text:
            return value
    return text  # the config's own check names the field


def _parse_json_object(name, text):
    """`--model_config`: a JSON object, or the path of a .json file holding one."""
    source = text
    if os.path.isfile(text):
        with open(text, encoding="utf-8") as f:
            source = f.read()
    try:
        value = json.loads(source)
    except json.JSONDecodeError as error:
        if source is text and not text.lstrip().startswith(("{", "[")):
            raise UserInputError(
                f"--{name}={text}: neither a JSON object nor an existing .json file"
            ) from None
        raise UserInputError(f"--{name}: not valid JSON ({error})") from None
    if not isinstance(value, dict):
        raise UserInputError(f"--{name}: must be a JSON object, got {type(value).__name__}")
    return value


def check_finite_flags(config_class, *, names=None):
    """Raises `UserInputError` (`--name=nan: must be a finite number`, one line through
    `kerasgen.cli.run_reporting_user_errors`) for a float flag of `config_class` that is NaN or
    infinite."""
    for field in _flag_fields(config_class, names):
        value = FLAGS[field.name].value
        if isinstance(value, float) and not math.isfinite(value):
            raise UserInputError(f"--{field.name}={value}: must be a finite number")


def flag_values(config_class, *, names=None, only_present=False):
    """`{field: value}` read from the parsed flags of `config_class`'s fields.

    Args:
        names: the fields to read (default: every field that is a flag).
        only_present: only the flags given on the command line.
    """
    check_finite_flags(config_class, names=names)
    values = {}
    for field in _flag_fields(config_class, names):
        name = field.name
        if only_present and not FLAGS[name].present:
            continue
        value = FLAGS[name].value
        valid = valid_choices(config_class, field)
        if value is not None and valid is not None:
            value = _parse_choice(value, valid)
        elif value is not None and _base_type(field.type) is dict:
            value = _parse_json_object(name, value)
        values[name] = value
    return values
