"""A region's provider list as Excel saves it: read, checked row by row, errors by line."""

from __future__ import annotations

import pytest

from overdracht.contracts import InvalidInput
from services.auth import lists


def test_semicolons_a_bom_and_every_column():
    raw = (
        "\ufeffNaam;E-mailadres;Mobiel nummer;Beroep;Organisatie;AGB-code\r\n"
        "Anna de Vries;Anna@Example.NL;06 1234 5678;Verloskundige;Praktijk Zon;01-23.45.67\r\n"
    ).encode()
    rows, errors = lists.parse(raw)

    assert errors == []
    assert rows == [
        {
            "line": 2,
            "full_name": "Anna de Vries",
            "email": "Anna@example.nl",  # the domain is not case-sensitive, the mailbox may be
            "phone": "0612345678",
            "profession": "verloskundige",
            "organisation": "Praktijk Zon",
            "agb_code": "01234567",
        }
    ]


def test_commas_no_bom_columns_in_any_order_and_the_optional_ones_left_out():
    raw = b"Beroep,E-mail,Naam,Mobiel\ngynaecoloog,b@example.nl,Bea Bakker,+31 6 12345678\n"
    [row], errors = lists.parse(raw)

    assert errors == []
    assert (row["full_name"], row["phone"], row["organisation"], row["agb_code"]) == (
        "Bea Bakker",
        "0612345678",
        None,
        None,
    )


def test_lines_are_numbered_as_excel_shows_them():
    """Empty rows count; a quoted cell over two lines is one row, as in Excel."""
    raw = (
        b"Naam;E-mail;Mobiel;Beroep\r\n"
        b"Anna;a@example.nl;0612345678;arts\r\n"  # 2
        b";;;\r\n"  # 3: empty, skipped
        b'"Bea\r\nBakker";b@example.nl;0612345679;arts\r\n'  # 4, over two lines of the file
        b"Carla;geen-adres;0612;bakker\r\n"  # 5
    )
    rows, errors = lists.parse(raw)

    assert [r["line"] for r in rows] == [2, 4]
    assert rows[1]["full_name"] == "Bea Bakker"
    [error] = errors
    assert error["line"] == 5
    # every problem of the row at once, in Dutch, and each by its field
    for part in ("e-mailadres", "mobiel nummer", "Beroep"):
        assert part in error["message"]
    assert set(error["fields"]) == {"email", "phone", "profession"}


def test_the_same_address_twice_is_an_error_on_the_second():
    raw = (
        "Naam;E-mail;Mobiel;Beroep\n"
        "Anna;a@example.nl;0612345678;arts\n"
        "Anna Twee;A@EXAMPLE.NL;0612345679;arts\n"
    )
    rows, errors = lists.parse(raw)

    assert [r["line"] for r in rows] == [2]
    assert errors == [
        {
            "line": 3,
            "message": "Dit e-mailadres staat al op regel 2.",
            # for a page in another language
            "template": "Dit e-mailadres staat al op regel %(line)s.",
            "params": {"line": 2},
        }
    ]


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"", "leeg"),
        (b"Naam;E-mail;Telefoonboek\n", "mobiel nummer, beroep"),
        ("Naam;E-mail;Mobiel;Beroep\nZoë;z@example.nl;0612345678;arts\n".encode("cp1252"), "UTF-8"),
        (b"Naam;E-mail;Mobiel;Beroep\n" + b"x" * (lists.MAX_BYTES + 1), "te groot"),
    ],
)
def test_a_file_that_cannot_be_read_is_refused_whole(raw, says):
    with pytest.raises(InvalidInput) as refused:
        lists.parse(raw)

    assert refused.value.code == "invalid_provider_list"
    assert says in refused.value.message


def test_more_rows_than_allowed_is_refused():
    body = "".join(f"N{i};n{i}@example.nl;0612345678;arts\n" for i in range(lists.MAX_ROWS + 1))
    with pytest.raises(InvalidInput) as refused:
        lists.parse("Naam;E-mail;Mobiel;Beroep\n" + body)

    assert str(lists.MAX_ROWS) in refused.value.message
