"""The README's table of supported languages says what common/videojobs/languages.py holds."""

from __future__ import annotations

import re
from pathlib import Path

from videojobs.languages import LANGUAGES

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_language_table_matches_languages() -> None:
    text = README.read_text()
    table = re.search(r"<!-- languages-table:.*?-->\n(.*?)<!-- /languages-table -->", text, re.DOTALL)
    assert table, "README lost its languages table"
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table.group(1).splitlines()[2:]]
    expected = [
        [
            spoken.name,
            f"`{tag}`",
            f"`{spoken.espeak_voice}`",
            spoken.font,
            str(spoken.cue_chars),
            "yes (MarkupText)" if spoken.right_to_left else "no",
        ]
        for tag, spoken in LANGUAGES.items()
    ]
    assert rows == expected
