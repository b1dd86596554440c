"""Text is cut for speech at sentence ends, the Devanagari danda included, within a request limit."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.speech.sarvam import STT_LANGUAGES, TTS_LANGUAGES, sarvam_language
from shared.speech.sentences import opening_clause_end, pieces, sentences


def test_sentences_end_at_stops_questions_exclamations_and_the_danda() -> None:
    text = 'नमस्ते। आप कैसे हैं? Great! "Quoted." Dr Rao said 3.5 km॥ Last'
    assert sentences(text) == ["नमस्ते।", "आप कैसे हैं?", "Great!", '"Quoted."', "Dr Rao said 3.5 km॥", "Last"]


def test_an_opening_clause_ends_at_a_comma_semicolon_or_colon_after_enough_words() -> None:
    text = "Sure, we are open today, until 10 pm."
    assert text[: opening_clause_end(text, 3)] == "Sure, we are open today, "
    assert text[: opening_clause_end(text, 1)] == "Sure, "
    assert opening_clause_end("Yes; of course: we are", 3) == len("Yes; of course: ")


def test_numbers_times_and_unfinished_clauses_are_not_clause_ends() -> None:
    assert opening_clause_end("It costs 10,000 rupees and opens at 10:30 am", 1) is None
    assert opening_clause_end("We are open today,", 1) is None, "no space after the comma yet: a number may follow"
    assert opening_clause_end("Sure, we", 3) is None


def test_pieces_pack_whole_sentences_up_to_the_limit() -> None:
    assert pieces("एक। दो। तीन।", 8) == ["एक। दो।", "तीन।"]


def test_a_sentence_longer_than_the_limit_is_cut_at_spaces_then_inside_a_word() -> None:
    assert pieces("aaaa bbbb cccc.", 9) == ["aaaa bbbb", "cccc."]
    assert pieces("x" * 12, 5) == ["xxxxx", "xxxxx", "xx"]


@given(st.text(alphabet="अब क।?. xy", min_size=1, max_size=300), st.integers(min_value=1, max_value=40))
def test_pieces_keep_every_word_in_order_and_stay_within_the_limit(text: str, limit: int) -> None:
    cut = pieces(text, limit)
    assert all(0 < len(p) <= limit for p in cut)
    assert "".join("".join(cut).split()) == "".join(text.split())


@pytest.mark.parametrize(
    ("tag", "code"),
    [("hi-IN", "hi-IN"), ("HI-in", "hi-IN"), ("en-US", "en-IN"), ("en", "en-IN"), ("or-IN", "od-IN"), ("fr-FR", None)],
)
def test_agent_languages_map_to_sarvams_codes(tag: str, code: str | None) -> None:
    assert sarvam_language(tag, TTS_LANGUAGES) == code


def test_speech_to_text_hears_more_languages_than_text_to_speech_speaks() -> None:
    assert sarvam_language("ur-IN", STT_LANGUAGES) == "ur-IN"
    assert sarvam_language("ur-IN", TTS_LANGUAGES) is None
    assert len(TTS_LANGUAGES) == 11
