"""The CLI's job options, derived from the request contract: one option per field, nested ones flattened."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

import typer
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from videojobs.contract import ContractModel, GenerationRequest


@dataclass(frozen=True)
class RequestOption:
    """One field of the request as a command-line parameter."""

    path: tuple[str, ...]
    """Where the field sits in the request, e.g. ("models", "planner")."""
    parameter: inspect.Parameter

    @property
    def flag(self) -> str:
        """How the user writes it: `--models-planner`, or `TOPIC` for an argument."""
        if self.parameter.default is inspect.Parameter.empty:
            return self.parameter.name.upper()
        return _flag(self.path)


def _flag(path: tuple[str, ...]) -> str:
    """`--models-planner` for ("models", "planner"); a name repeated is said once: `--voice`."""
    words = [word for n, word in enumerate(path) if n == 0 or word != path[n - 1]]
    return "--" + "-".join(words).replace("_", "-")


def request_options(model: type[BaseModel] = GenerationRequest) -> list[RequestOption]:
    """Every field of `model` as a parameter: required ones as arguments, the others as options."""
    return list(_options(model, ()))


def _options(model: type[BaseModel], prefix: tuple[str, ...]) -> Iterator[RequestOption]:
    for name, info in model.model_fields.items():
        path = (*prefix, name)
        value_type = _value_type(info.annotation)
        if isinstance(value_type, type) and issubclass(value_type, ContractModel):
            yield from _options(value_type, path)
            continue
        yield RequestOption(path, _parameter(path, value_type, info))


def _value_type(annotation: Any) -> Any:
    """The annotation without None and Annotated metadata: what the option itself holds."""
    if get_origin(annotation) is Annotated:
        return _value_type(get_args(annotation)[0])
    if get_origin(annotation) in (UnionType, Union):
        options = [argument for argument in get_args(annotation) if argument is not type(None)]
        if len(options) == 1:
            return _value_type(options[0])
    if get_origin(annotation) is list:  # typer takes plain item types (the contract still validates them)
        return list[_value_type(get_args(annotation)[0])]  # type: ignore[misc]
    return annotation


def _parameter(path: tuple[str, ...], value_type: Any, info: FieldInfo) -> inspect.Parameter:
    name = "_".join(path)
    help_text = info.description or ""
    if info.is_required() and len(path) == 1:
        argument = typer.Argument(help=help_text, show_default=False, metavar=name.upper())
        annotation: Any = Annotated[value_type, argument]
        return inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=annotation)
    flag = _flag(path)
    declarations = [f"{flag}/--no-{flag[2:]}"] if value_type is bool else [flag]
    option = typer.Option(*declarations, help=help_text, show_default=_shown_default(info))
    annotation = Annotated[value_type | None, option]
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=None)


def _shown_default(info: FieldInfo) -> str | bool:
    """The default as --help shows it; nothing for unset optionals (the deployment's default applies)."""
    default = info.get_default(call_default_factory=True)
    if default in (None, PydanticUndefined, [], ""):
        return False
    if isinstance(default, list):
        return ", ".join(str(item.value if isinstance(item, Enum) else item) for item in default)
    if isinstance(default, Enum):
        return str(default.value)
    return str(default).lower() if isinstance(default, bool) else str(default)


def request_from_options(options: list[RequestOption], values: dict[str, Any]) -> GenerationRequest:
    """The request the given option values make (options left out keep the contract's defaults).

    Raises ValidationError; `option_named` turns its location back into the option the user typed.
    """
    request: dict[str, Any] = {}
    for option in options:
        value = values.get(option.parameter.name)
        if value is None or value == []:
            continue
        *groups, field = option.path
        target = request
        for group in groups:
            target = target.setdefault(group, {})
        target[field] = value
    return GenerationRequest.model_validate(request)


def option_named(options: list[RequestOption], error: ValidationError) -> str:
    """`--option: message` for the first error of a request built from options."""
    first = error.errors()[0]
    message = first["msg"].removeprefix("Value error, ")
    location = tuple(str(part) for part in first["loc"])
    for option in options:
        if location[: len(option.path)] == option.path:
            return f"{option.flag}: {message}"
    return f"{'.'.join(location)}: {message}" if location else message
