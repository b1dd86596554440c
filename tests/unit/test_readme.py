"""The README is the front door: it must document every setting the app reads."""

from __future__ import annotations

from shared.config import REPOSITORY_ROOT, Settings


def test_every_setting_is_in_the_readme_table() -> None:
    readme = (REPOSITORY_ROOT / "README.md").read_text(encoding="utf-8")
    missing = [name.upper() for name in Settings.model_fields if f"| `{name.upper()}` |" not in readme]
    assert missing == []
