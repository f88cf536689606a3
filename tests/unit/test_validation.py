"""What providers type, checked before anything is stored: client and document fields."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest

from overdracht import config
from overdracht.contracts import InvalidInput
from overdracht.timezone import today
from services.auth import accounts
from services.clients import schemas as clients
from services.documents import schemas as documents

#: a fixed "today" for removal dates, so no result depends on when the tests run
NOW = date(2026, 3, 10)


@pytest.fixture(autouse=True)
def default_settings(monkeypatch, tmp_path):
    """Settings from the defaults only: no development env file, no inherited overrides."""
    monkeypatch.setenv("OVERDRACHT_ENV_FILE", str(tmp_path / "no-env-file"))
    for name in (
        "OVERDRACHT_REMOVAL_HORIZON_WEEKS",
        "OVERDRACHT_REMOVAL_AFTER_DUE_WEEKS",
        "OVERDRACHT_DOCUMENT_TYPES",
    ):
        monkeypatch.delenv(name, raising=False)
    config._file_values.cache_clear()
    yield
    config._file_values.cache_clear()


def _code(call, *args, **kwargs) -> str:
    with pytest.raises(InvalidInput) as caught:
        call(*args, **kwargs)
    return caught.value.code


# --- BSN -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("111222333", "111222333"),
        ("111 222 333", "111222333"),
        ("111.222.333", "111222333"),
        (111222333, "111222333"),
        ("012345672", "012345672"),
    ],
)
def test_a_bsn_that_passes_the_elfproef_is_accepted(typed, stored):
    assert clients.bsn(typed) == stored


@pytest.mark.parametrize(
    "typed",
    ["123456789", "111222334", "000000000", "11122233", "1112223330", "abcdefghi", "", None],
)
def test_a_bsn_that_fails_the_elfproef_is_refused(typed):
    assert _code(clients.bsn, typed) == "invalid_bsn"


def test_random_elfproef_numbers_are_accepted_and_a_changed_digit_is_not():
    from tests.support import valid_bsn

    for _ in range(50):
        number = valid_bsn()
        assert clients.bsn(number) == number
        # changing one digit by one changes the weighted sum by its weight (1..9): never 0 mod 11
        last = str((int(number[-1]) + 1) % 10)
        assert _code(clients.bsn, number[:-1] + last) == "invalid_bsn"


# --- phone -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "typed",
    [
        "0612345678",
        "06-12345678",
        "+31612345678",
        "06 1234 5678",
        "(06) 12345678",
        "+31 6 1234 5678",
        "0031612345678",
        "0031 6 12345678",
        "+31 (0)6 12345678",
    ],
)
def test_a_dutch_phone_number_is_normalised_to_ten_digits(typed):
    assert clients.phone(typed) == "0612345678"


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("020-1234567", "0201234567"),  # Amsterdam
        ("+31 50 123 4567", "0501234567"),  # Groningen
        ("0031 85 123 4567", "0851234567"),  # VoIP
    ],
)
def test_a_landline_number_is_kept(typed, stored):
    assert clients.phone(typed) == stored


@pytest.mark.parametrize(
    "typed",
    [
        "061234567",  # 9 digits
        "06123456789",  # 11 digits
        "+3161234567",  # 9 digits once +31 becomes 0
        "+316123456789",  # 11 digits once +31 becomes 0
        "6123456789",  # 10 digits, no leading 0
        "+32612345678",  # not a Dutch number
        "06-1234567a",
        "",
        None,
    ],
)
def test_a_phone_number_without_ten_digits_is_refused(typed):
    assert _code(clients.phone, typed) == "invalid_phone"


@pytest.mark.parametrize(
    "typed",
    [
        "0612",
        "0000000000",  # ten digits, no such number
        "0612345678x",  # phonenumbers reads the x as an extension
        "tel:+31-6-12345678",
        "06\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668",  # Arabic-Indic digits
        "0601234567",  # 060 is no number range
        "0800-1234",  # a service number, no 10-digit form
        "0900-1234567",
        "+1 202 555 0100",  # valid, but not Dutch
        "+44 7911 123456",
        "+599 7 123 4567",  # Caribbean Netherlands: +599, not +31
    ],
)
def test_a_phone_number_that_is_no_valid_dutch_number_is_refused(typed):
    with pytest.raises(InvalidInput) as caught:
        clients.phone(typed)

    assert caught.value.code == "invalid_phone"
    assert "Nederlands" in caught.value.message


# --- names -----------------------------------------------------------------------------

MIXED_OR_SPECIAL_NAMES = [
    "J\u0430nsen",  # Cyrillic а among Latin letters
    "\u0412akker",  # Cyrillic В
    "\u0391nna",  # Greek Alpha
    "de V\u0456sser",  # Cyrillic і
    "\uff2a\uff41\uff4e\uff53\uff45\uff4e",  # fullwidth Ｊａｎｓｅｎ
    "J\uff41nsen",  # one fullwidth letter
    "\U0001d409\U0001d41a\U0001d427\U0001d42c\U0001d41e\U0001d427",  # mathematical bold
    "\U0001d4d9ansen",  # one mathematical script letter
    "\ufb01nke",  # the fi ligature
    "Jan\u017fen",  # long s
]


@pytest.mark.parametrize(
    "typed",
    [
        "Jansen",
        "van der Berg",
        "D'Ancona",
        "Smit-Jansen",
        "Özdemir",
        "Müller-Lüdenscheidt",
        "Brontë",
        "Søndergaard",
        "Weiß",
        "Łukasiewicz",
        "Иванова",  # one script, not Latin
        "Παπαδοπούλου",
    ],
)
def test_a_name_in_one_script_is_accepted(typed):
    assert clients.maiden_name(typed) == typed
    assert accounts.full_name(typed) == typed


def test_a_name_is_stored_composed_nfc():
    decomposed = "Jose\u0301 Brønte\u0308"  # e + combining acute, e + combining diaeresis

    assert clients.maiden_name(decomposed) == "José Brøntë"
    assert accounts.full_name(decomposed) == "José Brøntë"


@pytest.mark.parametrize("typed", MIXED_OR_SPECIAL_NAMES)
def test_a_maiden_name_mixing_scripts_or_special_letter_forms_is_refused(typed):
    with pytest.raises(InvalidInput) as caught:
        clients.maiden_name(typed)

    assert caught.value.code == "invalid_maiden_name"
    assert "één schrift" in caught.value.message


@pytest.mark.parametrize("typed", MIXED_OR_SPECIAL_NAMES)
def test_a_full_name_mixing_scripts_or_special_letter_forms_is_refused(typed):
    with pytest.raises(InvalidInput) as caught:
        accounts.full_name(typed)

    assert caught.value.code == "invalid_full_name"
    assert "één schrift" in caught.value.message


@pytest.mark.parametrize("typed", ["https://x.nl/activeren", "Anna <b>de Vries</b>", "a@b.nl"])
def test_a_full_name_that_could_carry_a_link_or_markup_into_her_mail_is_refused(typed):
    with pytest.raises(InvalidInput) as caught:
        accounts.full_name(typed)
    assert caught.value.code == "invalid_full_name"


def test_a_full_name_may_hold_digits_and_punctuation_of_any_script():
    assert accounts.full_name("  Test   Zorgverlener 3f2a ") == "Test Zorgverlener 3f2a"
    assert accounts.full_name("dr. A.B. de Wit (verloskundige)") == (
        "dr. A.B. de Wit (verloskundige)"
    )


@pytest.mark.parametrize("typed", ["", None, "A", "   "])
def test_a_missing_full_name_is_refused(typed):
    assert _code(accounts.full_name, typed) == "invalid_full_name"


@pytest.mark.parametrize("typed", ["Jansen <script>", "Jansen2", "J@nsen"])
def test_a_maiden_name_with_other_characters_is_still_refused(typed):
    assert _code(clients.maiden_name, typed) == "invalid_maiden_name"


# --- the provider's mobile number ------------------------------------------------------


@pytest.mark.parametrize(
    "typed",
    [
        "0612345678",
        "06-12345678",
        "06 1234 5678",
        "+31612345678",
        "+31 6 1234 5678",
        "0031612345678",
    ],
)
def test_a_dutch_mobile_number_is_stored_as_06_and_eight_digits(typed):
    assert accounts.mobile_phone(typed) == "0612345678"


@pytest.mark.parametrize(
    "typed",
    [
        "0201234567",  # a landline gets no SMS
        "+31 20 123 4567",
        "0661234567",  # 066: pagers
        "0671234567",  # 067: no such range
        "0601234567",
        "061234567",
        "06123456789",
        "0000000000",
        "+32 470 12 34 56",  # a Belgian mobile
        "06-1234567a",
        "",
        None,
    ],
)
def test_a_number_that_is_no_dutch_mobile_is_refused_for_a_provider(typed):
    with pytest.raises(InvalidInput) as caught:
        accounts.mobile_phone(typed)

    assert caught.value.code == "invalid_phone"
    assert "mobiel" in caught.value.message


def test_the_test_helper_makes_mobile_numbers_the_validation_accepts():
    from tests.support import mobile

    for _ in range(500):
        number = mobile()
        assert accounts.mobile_phone(number) == number
        assert clients.phone(number) == number


class _Session:
    """Just enough of a SQLAlchemy session for register(): no user yet, flush gives an id."""

    def __init__(self) -> None:
        self.added = []

    def scalar(self, statement):
        return None

    def add(self, row) -> None:
        self.added.append(row)

    def flush(self) -> None:
        import uuid

        for row in self.added:
            row.id = row.id or uuid.uuid4()


def _registration(**change):
    return {
        "username": "anna",
        "full_name": "Anna de Wit",
        "email": "anna@example.nl",
        "phone": "06-12345678",
        "region": "Regio Noord",
        "role": "coordinator",
        "password": "een lang genoeg wachtwoord",
        **change,
    }


def test_register_stores_the_mobile_number_national_and_the_name_composed():
    provider, _ = accounts.register(
        _Session(),
        _registration(phone="+31 6 1234 5678", full_name="Anna de Wi\u0301t"),
        {"type": "operator"},
    )

    assert provider.phone == "0612345678"
    assert provider.full_name == "Anna de Wít"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"full_name": "\u0410nna de Wit"}, "invalid_full_name"),  # Cyrillic А
        ({"full_name": "\uff21nna de Wit"}, "invalid_full_name"),  # fullwidth Ａ
        ({"phone": "020-1234567"}, "invalid_phone"),
        ({"phone": "0661234567"}, "invalid_phone"),
    ],
)
def test_register_refuses_mixed_names_and_numbers_that_are_no_mobile(change, code):
    assert _code(accounts.register, _Session(), _registration(**change), {}) == code


# --- birth date ------------------------------------------------------------------------


def test_a_birth_date_in_the_past_is_accepted():
    assert clients.birth_date("1990-05-17") == date(1990, 5, 17)


def test_a_birth_date_of_today_is_accepted():
    assert clients.birth_date(today().isoformat()) == today()


@pytest.mark.parametrize("value", [None, ""])
def test_a_missing_birth_date_is_refused(value):
    assert _code(clients.birth_date, value) == "missing_birth_date"


@pytest.mark.parametrize("value", ["17-05-1990", "1990-02-30", "gisteren", "1990/05/17"])
def test_an_invalid_birth_date_is_refused(value):
    assert _code(clients.birth_date, value) == "invalid_birth_date"


def test_a_birth_date_in_the_future_is_refused():
    tomorrow = today() + timedelta(days=1)

    assert _code(clients.birth_date, tomorrow.isoformat()) == "invalid_birth_date"


def test_a_birth_date_before_1900_is_refused():
    assert _code(clients.birth_date, "1899-12-31") == "invalid_birth_date"


# --- search criteria -------------------------------------------------------------------


def test_search_criteria_need_a_bsn_or_a_phone_number():
    assert _code(clients.search_criteria, {"birth_date": "1990-05-17"}) == "missing_bsn_or_phone"
    assert (
        _code(clients.search_criteria, {"birth_date": "1990-05-17", "bsn": "", "phone": ""})
        == "missing_bsn_or_phone"
    )


def test_search_criteria_with_a_bsn_only():
    found = clients.search_criteria({"birth_date": "1990-05-17", "bsn": "111 222 333"})

    assert found == (date(1990, 5, 17), "111222333", None)


def test_search_criteria_with_a_phone_number_only():
    found = clients.search_criteria({"birth_date": "1990-05-17", "phone": "+31612345678"})

    assert found == (date(1990, 5, 17), None, "0612345678")


def test_search_criteria_with_both():
    found = clients.search_criteria(
        {"birth_date": "1990-05-17", "bsn": "111222333", "phone": "06-12345678"}
    )

    assert found == (date(1990, 5, 17), "111222333", "0612345678")


def test_search_criteria_check_every_part():
    assert _code(clients.search_criteria, {"bsn": "111222333"}) == "missing_birth_date"
    assert (
        _code(clients.search_criteria, {"birth_date": "1990-05-17", "bsn": "123456789"})
        == "invalid_bsn"
    )
    assert (
        _code(clients.search_criteria, {"birth_date": "1990-05-17", "phone": "061234567"})
        == "invalid_phone"
    )


@pytest.mark.parametrize("data", [None, "1990-05-17", ["1990-05-17", "111222333"]])
def test_search_criteria_that_are_no_object_are_refused(data):
    assert _code(clients.search_criteria, data) == "invalid_input"


# --- keyed hash ------------------------------------------------------------------------


def test_keyed_hash_is_stable_for_the_same_pepper_kind_and_value():
    pepper = bytes(range(32))
    digest = clients.keyed_hash(pepper, "bsn", "111222333")

    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert clients.keyed_hash(pepper, "bsn", "111222333") == digest
    assert "111222333" not in digest


def test_keyed_hash_differs_per_pepper():
    one = clients.keyed_hash(b"\x01" * 32, "bsn", "111222333")
    other = clients.keyed_hash(b"\x02" * 32, "bsn", "111222333")

    assert one != other


def test_keyed_hash_differs_per_kind_and_per_value():
    pepper = b"\x07" * 32

    by_bsn = clients.keyed_hash(pepper, "bsn", "0612345678")
    by_phone = clients.keyed_hash(pepper, "phone", "0612345678")
    other_value = clients.keyed_hash(pepper, "phone", "0612345679")

    assert len({by_bsn, by_phone, other_value}) == 3


# --- document type ---------------------------------------------------------------------


@pytest.mark.parametrize("value", ["baringsverslag", "lab_uitslag", "zwangerschapskaart"])
def test_a_configured_document_type_is_accepted(value):
    assert documents.document_type(value) == value


@pytest.mark.parametrize("value", ["recept", "Baringsverslag", "Lab uitslag", "", None])
def test_an_unknown_document_type_is_refused(value):
    assert _code(documents.document_type, value) == "invalid_document_type"


def test_document_types_come_from_the_settings(monkeypatch):
    monkeypatch.setenv("OVERDRACHT_DOCUMENT_TYPES", "echo:Echo, brief:Verwijsbrief")

    assert documents.document_type("echo") == "echo"
    assert documents.document_type("brief") == "brief"
    assert _code(documents.document_type, "baringsverslag") == "invalid_document_type"


# --- removal date ----------------------------------------------------------------------


def _removal(days: int = 0, weeks: int = 0, due: date | None = None) -> date:
    value = (NOW + timedelta(days=days, weeks=weeks)).isoformat()
    return documents.removal_date(value, due, now=NOW)


def test_a_removal_date_tomorrow_is_accepted():
    assert _removal(days=1) == NOW + timedelta(days=1)


@pytest.mark.parametrize("days", [0, -1, -400])
def test_a_removal_date_today_or_before_is_refused(days):
    assert _code(_removal, days=days) == "removal_date_not_future"


def test_a_removal_date_up_to_six_weeks_after_the_due_date_is_accepted():
    due = NOW + timedelta(weeks=10)

    assert _removal(weeks=16, due=due) == due + timedelta(weeks=6)


def test_a_removal_date_more_than_six_weeks_after_the_due_date_is_refused():
    due = NOW + timedelta(weeks=10)

    assert _code(_removal, weeks=16, days=1, due=due) == "removal_date_too_late"


def test_with_a_due_date_the_horizon_does_not_apply():
    """A due date 44 weeks out allows removal at 50 weeks, past the 46-week horizon."""
    due = NOW + timedelta(weeks=44)

    assert _removal(weeks=50, due=due) == NOW + timedelta(weeks=50)
    assert _code(_removal, weeks=50, days=1, due=due) == "removal_date_too_late"


def test_a_due_date_long_past_leaves_no_valid_removal_date():
    due = NOW - timedelta(weeks=8)

    assert _code(_removal, days=1, due=due) == "removal_date_too_late"


def test_without_a_due_date_removal_is_capped_at_46_weeks():
    assert _removal(weeks=46) == NOW + timedelta(weeks=46)
    assert _code(_removal, weeks=46, days=1) == "removal_date_too_late"


def test_the_caps_come_from_the_settings(monkeypatch):
    monkeypatch.setenv("OVERDRACHT_REMOVAL_HORIZON_WEEKS", "4")
    monkeypatch.setenv("OVERDRACHT_REMOVAL_AFTER_DUE_WEEKS", "2")
    due = NOW + timedelta(weeks=10)

    assert _removal(weeks=4) == NOW + timedelta(weeks=4)
    assert _code(_removal, weeks=4, days=1) == "removal_date_too_late"
    assert _removal(weeks=12, due=due) == due + timedelta(weeks=2)
    assert _code(_removal, weeks=12, days=1, due=due) == "removal_date_too_late"


@pytest.mark.parametrize("value", [None, ""])
def test_a_missing_removal_date_is_refused(value):
    assert _code(documents.removal_date, value, None, now=NOW) == "missing_removal_date"


@pytest.mark.parametrize("value", ["10-04-2026", "2026-02-30", "volgende week"])
def test_an_invalid_removal_date_is_refused(value):
    assert _code(documents.removal_date, value, None, now=NOW) == "invalid_removal_date"


def test_removal_date_defaults_to_today_in_amsterdam():
    tomorrow = (today() + timedelta(days=1)).isoformat()

    assert documents.removal_date(tomorrow, None) == today() + timedelta(days=1)
    assert _code(documents.removal_date, today().isoformat(), None) == "removal_date_not_future"


# --- filename --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("verslag.pdf", "verslag.pdf"),
        ("../../etc/passwd", "passwd"),
        ("/var/lib/data/verslag.pdf", "verslag.pdf"),
        ("C:\\Users\\anna\\Documenten\\verslag.pdf", "verslag.pdf"),
        ("map/sub\\verslag.pdf", "verslag.pdf"),
    ],
)
def test_filename_drops_path_parts(given, kept):
    assert documents.filename(given) == kept


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("ver\x00slag.pdf", "verslag.pdf"),
        ("ver\nslag\r\t.pdf", "verslag.pdf"),
        ("ver\x1b[31mslag.pdf", "ver_31mslag.pdf"),
        ("rapport\u202efdp.exe", "rapportfdp.exe"),  # right-to-left override
        ("ver\x7fslag.pdf", "verslag.pdf"),
    ],
)
def test_filename_drops_control_characters(given, kept):
    assert documents.filename(given) == kept


def test_filename_keeps_readable_names_and_replaces_odd_characters():
    assert documents.filename("Echo 20 weken (Jansen) - kopie.pdf") == (
        "Echo 20 weken (Jansen) - kopie.pdf"
    )
    assert documents.filename("café résumé.pdf") == "café résumé.pdf"
    assert documents.filename('<script>"x".pdf') == "_script__x_.pdf"


@pytest.mark.parametrize("given", ["", None, "...", "   ", "/", "map/", "\x00\x01"])
def test_an_empty_filename_becomes_document(given):
    assert documents.filename(given) == "document"


def test_a_very_long_filename_is_shortened_keeping_its_extension():
    name = documents.filename("a" * 300 + ".pdf")

    assert len(name) <= 200
    assert name.endswith(".pdf")
    assert name == "a" * 190 + ".pdf"


def test_a_very_long_filename_without_extension_is_cut():
    name = documents.filename("b" * 300)

    assert name == "b" * 200


def test_a_long_filename_at_the_limit_is_kept_whole():
    given = "c" * 196 + ".pdf"

    assert documents.filename(given) == given


# --- filename and content type ---------------------------------------------------------

PDF = "application/pdf"
JPEG = "image/jpeg"
TIFF = "image/tiff"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


@pytest.mark.parametrize(
    ("given", "content_type", "stored"),
    [
        ("x.html", PDF, "x.pdf"),  # the bytes decide, not the name
        ("x.exe", "image/png", "x.png"),
        ("brief.doc", DOCX, "brief.docx"),
        ("scan.png", TIFF, "scan.tif"),
        ("foto.pdf", JPEG, "foto.jpg"),
        ("verslag", PDF, "verslag.pdf"),  # no extension: the canonical one is added
        ("document", DOCX, "document.docx"),
        ("Echo 20.5 weken", PDF, "Echo 20.5 weken.pdf"),  # "5 weken" is no extension
        ("versie.2024", PDF, "versie.2024.pdf"),
    ],
)
def test_a_filename_gets_the_extension_of_the_detected_content_type(given, content_type, stored):
    assert documents.filename_for(given, content_type) == stored


@pytest.mark.parametrize(
    ("given", "content_type"),
    [
        ("kaart.pdf", PDF),
        ("kaart.PDF", PDF),
        ("scan.JPG", JPEG),  # any case, either spelling of the JPEG family
        ("scan.jpeg", JPEG),
        ("scan.Jpe", JPEG),
        ("scan.tiff", TIFF),
        ("scan.TIF", TIFF),
        ("brief.docx", DOCX),
    ],
)
def test_a_filename_whose_extension_already_fits_is_kept(given, content_type):
    assert documents.filename_for(given, content_type) == given


def test_every_allowed_content_type_has_extensions():
    assert set(documents.EXTENSIONS) == config.content_types()


def test_a_content_type_without_known_extensions_leaves_the_name():
    assert documents.filename_for("plaatje.png", "image/gif") == "plaatje.png"
    assert documents.filename_for("plaatje.png", None) == "plaatje.png"


def test_a_changed_extension_keeps_the_name_within_200_characters():
    long_name = documents.filename("a" * 300 + ".html")
    stored = documents.filename_for(long_name, DOCX)

    assert len(stored) <= 200
    assert stored == "a" * 190 + ".docx"
    no_extension = documents.filename_for("b" * 200, DOCX)
    assert no_extension == "b" * 195 + ".docx"


# --- JSON bodies -----------------------------------------------------------------------


@pytest.fixture
def gateway():
    """The API blueprint and the error handlers, no services: body() refuses before any call."""
    from flask import Flask

    from gateway import api, errors

    app = Flask("test")
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024  # as create_app sets it
    app.register_blueprint(api.bp)
    errors.register(app)
    return app


@pytest.mark.parametrize(
    "text",
    [
        "[" * 60000,
        "[" * 5000 + "]" * 5000,
        '{"a":' * 5000 + "1" + "}" * 5000,
        '{"username": ' + "[" * 1000 + "]" * 1000 + "}",
    ],
)
def test_json_nested_thousands_deep_is_a_400_in_the_api_error_shape(gateway, text):
    response = gateway.test_client().post(
        "/api/v1/login", data=text, content_type="application/json"
    )

    assert response.status_code == 400
    assert response.get_json() == {
        "error": {"code": "malformed_request", "message": "De JSON in de body is te diep genest."}
    }


def test_json_nested_within_the_limit_is_read(gateway):
    from gateway import api

    nested = "[" * 30 + "]" * 30
    text = f'{{"a": {nested}, "b": "[[[[{{{{{{{{\\"[[[[", "c": "{"[" * 5000}"}}'
    with gateway.test_request_context(data=text, content_type="application/json"):
        data = api.body()

    assert data["a"] == json_nested(29)
    assert data["c"] == "[" * 5000


def json_nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("text", "deep"),
    [
        ("[" * 33, True),
        ("[" * 32 + "]" * 32, False),
        ("[" * 32 + "]" + "[" + "]" * 32, False),  # depth goes down again
        ('["' + "[" * 100 + '"]', False),  # brackets in a string do not count
        ('["\\"' + "[" * 100 + '"]', False),  # nor after an escaped quote
        ('["\\\\"' + ", " + "[" * 100, True),  # an escaped backslash ends no string
        ('{"a":' * 33, True),
    ],
)
def test_too_deep_counts_nesting_outside_strings(text, deep):
    from gateway import api

    assert api.too_deep(text.encode(), 32) is deep


def test_a_recursion_error_from_the_parser_is_a_malformed_request(gateway, monkeypatch):
    """Should the count ever miss a nesting, the parser's RecursionError is still a 400."""
    from gateway import api

    monkeypatch.setattr(api, "too_deep", lambda raw, limit: False)
    text = "[" * 60000
    response = gateway.test_client().post(
        "/api/v1/login", data=text, content_type="application/json"
    )

    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "malformed_request"


def test_a_new_client_names_every_wrong_field_at_once_and_it_crosses_rpc():
    from nameko.exceptions import deserialize, serialize

    with pytest.raises(InvalidInput) as refused:
        clients.new_client(
            {"maiden_name": "", "birth_date": "1990-01-01", "bsn": "123", "phone": "0612"}
        )
    assert set(refused.value.fields) == {"maiden_name", "bsn", "phone"}
    assert refused.value.code == "missing_maiden_name"  # the first, as the API reports it
    again = deserialize(serialize(refused.value))
    assert isinstance(again, InvalidInput)
    assert (again.code, again.fields) == (refused.value.code, refused.value.fields)


def test_a_search_names_the_birth_date_and_the_bsn_or_phone_together():
    with pytest.raises(InvalidInput) as refused:
        clients.search_criteria({"birth_date": "", "bsn": "", "phone": ""})
    assert set(refused.value.fields) == {"birth_date", "bsn"}
    assert "telefoonnummer" in refused.value.fields["bsn"]


def test_without_a_due_date_the_horizon_counts_from_the_day_it_was_placed():
    """Moving a date again and again never keeps a document longer than placing it could."""
    weeks = config.get_int("OVERDRACHT_REMOVAL_HORIZON_WEEKS")
    now = date(2027, 6, 1)
    placed_on = now - timedelta(weeks=10)
    latest = placed_on + timedelta(weeks=weeks)

    bounds = documents.removal_bounds(None, now, placed_on)

    assert bounds["max"] == latest.isoformat() and "na plaatsing" in bounds["reason"]
    assert documents.removal_date(latest.isoformat(), None, now, placed_on) == latest
    with pytest.raises(InvalidInput) as refused:
        documents.removal_date((latest + timedelta(days=1)).isoformat(), None, now, placed_on)
    assert refused.value.code == "removal_date_too_late"
    # a due date caps it the same way whenever it was placed
    due = date(2027, 8, 1)
    assert documents.removal_bounds(due, now, placed_on) == documents.removal_bounds(due, now)
