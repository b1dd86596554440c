"""PDF text extraction on hostile files: whatever pypdf makes of a broken file is a 422, never a crash."""

from __future__ import annotations

import pytest

from shared.errors import Unprocessable
from shared.knowledge.loading import Limits, load_text
from tests.pdf_files import pdf_bytes

LIMITS = Limits(max_bytes=100_000, max_pdf_pages=10, max_characters=10_000)


def test_a_pdf_whose_xref_table_is_cut_is_unreadable_not_a_crash() -> None:
    whole = pdf_bytes(["Our samosas contain gluten and peanuts."])
    free = whole.index(b"0000000000 65535 f")
    cut = whole[:free] + whole[free + 10 :]  # the first entry's offset is gone: pypdf raised TypeError

    with pytest.raises(Unprocessable) as refused:
        load_text("cut.pdf", cut, LIMITS)

    assert refused.value.code == "unreadable_document"
    assert load_text("whole.pdf", whole, LIMITS).text == "Our samosas contain gluten and peanuts."
