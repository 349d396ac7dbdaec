"""Languages a video can be made in: the espeak-ng voice, the Text() font and the cue length of each."""

from __future__ import annotations

from dataclasses import dataclass

LANGUAGE_PATTERN = (
    r"^[A-Za-z]{2,3}(-[A-Za-z]{4})?(-([A-Za-z]{2}|[0-9]{3}))?(-([A-Za-z0-9]{5,8}|[0-9][A-Za-z0-9]{3}))*$"
)
"""A BCP 47 language tag: language, then optional script, region and variants (`en`, `zh-Hans-CN`)."""

LATIN_FONT = "DejaVu Sans"
LATIN_CUE_CHARS = 90
"""Characters per subtitle cue for scripts with spaces between words."""
CJK_CUE_CHARS = 32
"""Characters per subtitle cue for scripts without spaces, read about three times slower per character."""


@dataclass(frozen=True)
class Language:
    """What a supported language needs: its name, espeak-ng voice, font for Text() and cue length."""

    name: str
    iso639_2: str
    """The three-letter code MP4 track headers take."""
    espeak_voice: str
    font: str = LATIN_FONT
    cue_chars: int = LATIN_CUE_CHARS
    right_to_left: bool = False


LANGUAGES: dict[str, Language] = {
    "en": Language("English", "eng", "en"),
    "de": Language("German", "deu", "de"),
    "fr": Language("French", "fra", "fr-fr"),
    "es": Language("Spanish", "spa", "es"),
    "it": Language("Italian", "ita", "it"),
    "pt": Language("Portuguese", "por", "pt"),
    "nl": Language("Dutch", "nld", "nl"),
    "pl": Language("Polish", "pol", "pl"),
    "ru": Language("Russian", "rus", "ru"),
    "uk": Language("Ukrainian", "ukr", "uk"),
    "tr": Language("Turkish", "tur", "tr"),
    "vi": Language("Vietnamese", "vie", "vi"),
    "zh": Language("Chinese (Mandarin)", "zho", "cmn", "Noto Sans CJK SC", CJK_CUE_CHARS),
    "ja": Language("Japanese", "jpn", "ja", "Noto Sans CJK JP", CJK_CUE_CHARS),
    "ko": Language("Korean", "kor", "ko", "Noto Sans CJK KR", 40),
    "ar": Language("Arabic", "ara", "ar", "Noto Sans Arabic", 70, right_to_left=True),
    "he": Language("Hebrew", "heb", "he", "Noto Sans Hebrew", 70, right_to_left=True),
    "fa": Language("Persian", "fas", "fa", "Noto Sans Arabic", 70, right_to_left=True),
    "hi": Language("Hindi", "hin", "hi", "Noto Sans Devanagari", 70),
    "th": Language("Thai", "tha", "th", "Noto Sans Thai", 40),
}
"""Supported languages by primary subtag (a tag's region and script pick no other voice or font)."""


def primary_subtag(tag: str) -> str:
    """The language subtag of a BCP 47 tag, lower case (`zh-Hans-CN` → `zh`)."""
    return tag.split("-", 1)[0].lower()


def language(tag: str) -> Language | None:
    """The supported language a tag names, or None."""
    return LANGUAGES.get(primary_subtag(tag))


def cue_chars(tag: str) -> int:
    """Most characters in one subtitle cue for the language's script."""
    spoken = language(tag)
    return spoken.cue_chars if spoken else LATIN_CUE_CHARS


def track_language(tag: str) -> str:
    """The ISO 639-2 code an MP4 track of the language is tagged with (`und` when unknown)."""
    spoken = language(tag)
    return spoken.iso639_2 if spoken else "und"


def supported_tags() -> str:
    """The supported primary subtags, for error messages."""
    return ", ".join(sorted(LANGUAGES))
