"""Languages as documents name them (a code, a POSIX locale, a FLORES code, an English name), and
`--language` over all of them."""

from __future__ import annotations

import pytest

from engine.errors import UserError
from engine.importers.records import language_of


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"language": "pt-BR"}, "pt-BR"),
        ({"locale": "en_US"}, "en"),
        ({"locale": "fr_FR.UTF-8"}, "fr"),
        ({"language": "English"}, "en"),
        ({"language": "french"}, "fr"),
        ({"lang": "eng_Latn"}, "en"),
        ({"lang": "zho_Hans"}, "zh"),
        ({}, "en"),
    ],
)
def test_a_documents_language_is_read_as_a_code(fields: dict, code: str) -> None:
    assert language_of(fields, None, "f:1") == code


def test_language_given_overrides_the_document() -> None:
    assert language_of({"language": "English"}, "fr", "f:1") == "fr"
    assert language_of({"language": "Klingon!"}, "fr", "f:1") == "fr"


def test_a_language_that_is_none_of_those_is_named() -> None:
    with pytest.raises(UserError, match=r"^f:1: language 'Klingon!' is not a language code .* give --language$"):
        language_of({"language": "Klingon!"}, None, "f:1")
