"""Meters of a large configuration file validated once per shape.

A file of thousands of meters repeats a few shapes: the same model, digits, ratios, bus and
protocol keys, with only the serial, name, object, point, address and accounts of each meter its
own. The first meter of each shape is validated in full (by pydantic, as any meter); the others
of that shape are copies of it with their own values, each checked here against what
`amr.config.MeterConfig` asks of them (text; a serial of 1 to 64 characters; an address of a
number or text; accounts as a list of text). A meter this cannot vouch for is left as given, and
the full validation of the file judges it and names any problem as before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime, time
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)

OWN_TEXT = frozenset({"serial", "name", "model", "object", "point"})
"""Keys of `MeterConfig` typed plain ``str`` (the serial with a length of 1 to 64): a meter's own."""
SERIAL_LENGTH = (1, 64)
_TIMES = (datetime, date, time)


def _shape(entry: dict[str, Any]) -> tuple[dict[str, Any], tuple[Any, ...]] | None:
    """A meter's own values and the hashable shape of the rest (each value with its type: 1 is not
    1.0 nor true; a time by its text, offset included); None when a value cannot be compared so."""
    own: dict[str, Any] = {}
    rest: list[tuple[str, type, Any]] = []
    for key, value in entry.items():
        kind = type(value)
        if (kind is str and key in OWN_TEXT) or (key == "address" and (kind is int or kind is str)):
            own[key] = value
        elif key == "accounts" and kind is list and all(type(item) is str for item in value):
            own[key] = list(value)
        elif kind in _TIMES:
            rest.append((key, kind, value.isoformat()))
        else:
            rest.append((key, kind, value))
    serial = own.get("serial")
    if serial is None or not SERIAL_LENGTH[0] <= len(serial) <= SERIAL_LENGTH[1]:
        return None
    shape = (tuple(own), tuple(rest))
    try:
        hash(shape)
    except TypeError:  # a list or table among the rest (ratio steps, a protocol's table)
        return None
    return own, shape


def model_maker(template: M) -> Callable[[dict[str, Any]], M]:
    """Makes copies of `template` with their own values, built as `BaseModel.model_construct` builds a
    model (the same attributes), without validating again what the template's validation vouched for."""
    cls, values, fields = template.__class__, template.__dict__, template.__pydantic_fields_set__
    new, put = object.__new__, object.__setattr__

    def make(own: dict[str, Any]) -> M:
        made = new(cls)
        data = values.copy()
        data.update(own)
        put(made, "__dict__", data)
        put(made, "__pydantic_fields_set__", set(fields))
        put(made, "__pydantic_extra__", None)
        put(made, "__pydantic_private__", None)
        return made

    return make


def validated_alike(entries: Sequence[Any], validate: Callable[[Any], M]) -> list[Any]:
    """`entries` with each meter this can vouch for replaced by its validated model: `validate`
    (the full validation) once per shape, a copy with the meter's own values for the rest of
    that shape. Entries it cannot vouch for (or of a shape that fails validation) stay as given."""
    makers: dict[tuple[Any, ...], Callable[[dict[str, Any]], M] | None] = {}
    out: list[Any] = []
    for entry in entries:
        found = _shape(entry) if type(entry) is dict else None
        if found is None:
            out.append(entry)
            continue
        own, shape = found
        if shape in makers:
            maker = makers[shape]
            out.append(entry if maker is None else maker(own))
            continue
        try:
            template = validate(entry)
        except ValidationError:
            makers[shape] = None
            out.append(entry)
            continue
        makers[shape] = model_maker(template)
        out.append(template)
    return out
