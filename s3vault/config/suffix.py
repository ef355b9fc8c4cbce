"""The instruction-file suffix: where an object's envelope lives when not in its metadata.

An object ``KEY`` whose envelope is in an instruction file keeps it in the object
``KEY + SUFFIX``. The official clients default to ``.instruction``; the Ruby client's
``instruction_file_suffix`` (and the Java client's instruction-file config) let an
application choose another, so s3vault reads and writes under any suffix it is given
(``--instruction-suffix``, ``defaults.instruction_suffix``, a folder's
``instruction_suffix``).
"""

from __future__ import annotations

import unicodedata
from typing import Annotated

from pydantic import AfterValidator, WithJsonSchema

DEFAULT_INSTRUCTION_SUFFIX = ".instruction"


def check_instruction_suffix(value: str) -> str:
    """``value`` if it can name instruction files; ValueError saying why not.

    Refused: an empty (or blank) suffix, which would make every object its own
    envelope; a ``/``, which would put the envelope in another "folder" than its object
    (listings, sync and restore then could not tell it for an envelope); and control
    characters, which no one types on purpose and terminals do not show.
    """
    if not value.strip():
        raise ValueError(
            "an instruction-file suffix cannot be empty: the object would be its own envelope"
        )
    if "/" in value:
        raise ValueError(
            f"instruction-file suffix {value!r} contains '/': the envelope would not sit "
            "beside its object"
        )
    if any(unicodedata.category(c) == "Cc" for c in value):
        raise ValueError(f"instruction-file suffix {value!r} contains a control character")
    return value


# The same rules for tools that check the config by its JSON Schema (Ansible, Terraform):
# not blank, no '/', no C0/C1 control character.
SUFFIX_PATTERN = r"^(?=.*\S)[^/\u0000-\u001f\u007f-\u009f]+$"

InstructionSuffix = Annotated[
    str,
    AfterValidator(check_instruction_suffix),
    WithJsonSchema({"type": "string", "minLength": 1, "pattern": SUFFIX_PATTERN}),
]
