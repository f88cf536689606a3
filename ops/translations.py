"""The pages' catalogue: extract every marked text, update the English, compile it.

`python -m ops.translations` (`make translations`) rewrites
gateway/translations/en/LC_MESSAGES/messages.po with what the code holds now (new texts
come in untranslated, texts gone are dropped) and compiles messages.mo beside it.
`problems()` is what the tests check: every text translated, nothing fuzzy, nothing
stale, and the compiled file made from this catalogue.
"""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

from gateway.i18n import KEYWORDS

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = ROOT / "gateway" / "translations" / "en" / "LC_MESSAGES" / "messages.po"
COMPILED = CATALOGUE.with_suffix(".mo")
#: where texts are: the gateway (code and templates), the services and what they share
SOURCES = ("gateway", "services", "overdracht")
METHODS = [("**/templates/**.html", "jinja2.ext:babel_extract"), ("**.py", "python")]


def extracted() -> Catalog:
    """Every marked text in the sources, as a template catalogue (msgids only)."""
    return _extract()[0]


def _extract() -> tuple[Catalog, list[str]]:
    """The template catalogue, and the texts Babel skipped (an f-string cannot be
    translated as written: it must be a template with named values)."""
    template = Catalog(locale=None, project="Overdracht", msgid_bugs_address="")
    warnings = io.StringIO()
    with contextlib.redirect_stderr(warnings):
        for source in SOURCES:
            found = extract_from_dir(
                ROOT / source,
                METHODS,
                {"**/templates/**.html": {"extensions": "jinja2.ext.i18n"}},
                KEYWORDS,
                strip_comment_tags=True,
            )
            for filename, lineno, message, comments, context in found:
                template.add(
                    message,
                    None,
                    [(f"{source}/{filename}", lineno)],
                    auto_comments=comments,
                    context=context,
                )
    skipped = [line.split(": warning")[0] for line in warnings.getvalue().splitlines()]
    return template, [line for line in skipped if line]


def current() -> Catalog:
    with CATALOGUE.open("rb") as handle:
        return read_po(handle, locale="en")


def compiled(catalogue: Catalog) -> bytes:
    out = io.BytesIO()
    write_mo(out, catalogue)
    return out.getvalue()


def update() -> Catalog:
    """Bring the English catalogue up to the code, and compile it."""
    catalogue = current() if CATALOGUE.exists() else Catalog(locale="en")
    created = catalogue.creation_date  # kept: a run that changes no text changes nothing
    catalogue.update(extracted(), no_fuzzy_matching=True)
    catalogue.obsolete.clear()
    catalogue.creation_date = created
    catalogue.project, catalogue.version = "Overdracht", ""
    catalogue.msgid_bugs_address = catalogue.last_translator = ""
    catalogue.language_team = "English"
    catalogue.header_comment = (
        "# The pages of Overdracht in English: `make translations` (ops/translations.py)."
    )
    catalogue.fuzzy = False
    CATALOGUE.parent.mkdir(parents=True, exist_ok=True)
    with CATALOGUE.open("wb") as handle:
        write_po(handle, catalogue, width=96, sort_output=True, omit_header=False)
    COMPILED.write_bytes(compiled(current()))
    return catalogue


def problems() -> list[str]:
    """What is wrong with the catalogue as committed; empty when it is whole."""
    catalogue = current()
    template, skipped = _extract()
    ids = {m.id for m in catalogue if m.id}
    wanted = {m.id for m in template if m.id}
    found = [f"an f-string, which cannot be translated: {where}" for where in skipped]
    found += [f"not in the catalogue: {i!r}" for i in sorted(map(str, wanted - ids))]
    found += [f"no longer used: {i!r}" for i in sorted(map(str, ids - wanted))]
    for message in catalogue:
        if not message.id:
            continue
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if not all(strings):
            found.append(f"untranslated: {message.id!r}")
        if message.fuzzy:
            found.append(f"fuzzy: {message.id!r}")
    if not COMPILED.exists() or COMPILED.read_bytes() != compiled(catalogue):
        found.append(f"{COMPILED.relative_to(ROOT)} is not compiled from the catalogue")
    return found


def main() -> int:
    update()
    found = problems()
    left = [p for p in found if not p.startswith("untranslated")]
    untranslated = [p for p in found if p.startswith("untranslated")]
    print(f"{CATALOGUE.relative_to(ROOT)}: {len(untranslated)} texts to translate")
    for line in left + untranslated:
        print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
