"""The strings a client may send: every path, query and JSON body string of the API is one of these.

PostgreSQL cannot store a NUL (psycopg raises DataError: a 500 where SQLite answers), and no
control character makes sense in an id, a name, a filter or a path: refused at the door with a 422
naming the field, the same on both databases, before any query runs. Free text (a review note)
may hold tabs and line breaks, nothing else below the space. Lone surrogates (a JSON ``\\ud800``
escape) are refused as well: neither database driver can encode them. In an API body pydantic
refuses them before this check runs; a payload that reaches the station another way (an MQTT
trigger) meets ``control_character_problem``.

The OpenAPI spec shows the rule as each string's ``pattern``; the check itself is ours, so the 422
says which character and where instead of quoting a regular expression.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic_core import PydanticCustomError, core_schema

# Regular-expression classes of what is refused: C0 controls, DEL and C1 controls (Unicode
# category Cc), and the surrogate range.
CONTROL = r"\x00-\x1f\x7f-\x9f\ud800-\udfff"
CONTROL_BUT_LINE_BREAKS = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff"  # keeps \t \n \r


def control_character_problem(value: str, refused: str = CONTROL) -> str | None:
    """What is wrong with ``value`` in words, or None when it holds none of ``refused``."""
    found = re.search(f"[{refused}]", value)
    if found is None:
        return None
    code = ord(found.group())
    kind = "an unpaired surrogate" if 0xD800 <= code <= 0xDFFF else "a control character"
    return f"contains {kind} (U+{code:04X}) at position {found.start()}"


@dataclass(frozen=True)
class Printable:
    """``Annotated[str, Printable(...)]``: a string of ``min_length`` to ``max_length`` characters
    without control characters (tabs and line breaks allowed with ``line_breaks``)."""

    min_length: int | None = None
    max_length: int | None = None
    line_breaks: bool = False

    @property
    def refused(self) -> str:
        return CONTROL_BUT_LINE_BREAKS if self.line_breaks else CONTROL

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler):
        schema = handler(source)
        # The lengths sit on the string schema itself, not around the check: pydantic then says
        # "String should have at most 128 characters", as for any other string.
        for key in ("min_length", "max_length"):
            if getattr(self, key) is not None:
                schema[key] = getattr(self, key)
        return core_schema.no_info_after_validator_function(self._check, schema)

    def __get_pydantic_json_schema__(self, schema: Any, handler: GetJsonSchemaHandler):
        json_schema = handler(schema)
        json_schema["pattern"] = f"^[^{self.refused}]*$"
        return json_schema

    def _check(self, value: str) -> str:
        problem = control_character_problem(value, self.refused)
        if problem is None:
            return value
        accepted = "printable characters" + (", tabs and line breaks" if self.line_breaks else "")
        raise PydanticCustomError("control_character", f"{problem}; only {accepted} are accepted")


# The common kinds. Other lengths: Annotated[str, Printable(max_length=64)].
Text = Annotated[str, Printable()]  # any length: a path segment, a filter, a cursor
Name = Annotated[str, Printable(min_length=1, max_length=128)]  # an id, a name, a label
Note = Annotated[str, Printable(max_length=2000, line_breaks=True)]  # free text
