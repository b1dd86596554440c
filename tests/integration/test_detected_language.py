"""An agent that detects the caller's language answers in it: the prompt, the speech and the turn say so.

`answer_turn` against real Postgres, Redis and Azurite, with Sarvam faked on loopback (driven by the
`sarvamai` SDK) hearing Tamil from a caller of an English agent.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from shared import activities
from shared.config import REPOSITORY_ROOT
from shared.models import TurnInput
from shared.services import Services
from shared.speech.audio import encode_wav
from shared.speech.espeak import EspeakSynthesizer
from tests.chat_model_inputs import recording_chat_model_inputs
from tests.conftest import AppServices
from tests.fakes.sarvam_server import FakeSarvamServer
from tests.turn_inputs import caller_turn

TAMIL = "வணக்கம், நீங்கள் எப்போது திறக்கிறீர்கள்"


@pytest.fixture(scope="module")
def sarvam() -> Iterator[FakeSarvamServer]:
    with FakeSarvamServer(transcript=TAMIL, detected_language="ta-IN") as server:
        yield server


def agents_folder(tmp_path: Path, detect: bool) -> Path:
    demo = (REPOSITORY_ROOT / "agents" / "demo.toml").read_text(encoding="utf-8")
    setting = f"detect_language = {'true' if detect else 'false'}\n"
    (tmp_path / "demo.toml").write_text(demo.replace('voice = "en-us"\n', f'voice = "en-us"\n{setting}'))
    return tmp_path


def services_for(app_services: AppServices, sarvam: FakeSarvamServer, agents_dir: Path) -> Services:
    return app_services(agents_dir=agents_dir, sarvam_api_key=SecretStr(sarvam.api_key), sarvam_base_url=sarvam.url)


def spoken_turn(services: Services) -> TurnInput:
    request = caller_turn(services)
    blob = f"conversations/{request.conversation_id}/input/caller.wav"
    services.audio.put(blob, encode_wav(EspeakSynthesizer().synthesize("vanakkam", "ta-IN", "")))
    return request.model_copy(update={"audio_blob": blob})


def test_a_caller_heard_speaking_tamil_is_answered_and_spoken_to_in_tamil(
    app_services: AppServices, sarvam: FakeSarvamServer, tmp_path: Path
) -> None:
    services = services_for(app_services, sarvam, agents_folder(tmp_path, detect=True))
    before = len(sarvam.requests)

    with recording_chat_model_inputs() as sent:
        turn = activities.answer_turn(services, spoken_turn(services))

    asked = sarvam.requests[before:]
    assert [r.fields["language_code"] for r in asked if r.path == "/speech-to-text"] == ["unknown"]
    assert {r.fields["language_code"] for r in asked if r.path == "/text-to-speech"} == {"ta-IN"}
    assert (turn.user_text, turn.language, turn.tts_engine) == (TAMIL, "ta-IN", "sarvam")
    assert "Answer in ta-IN." in sent.system_texts()[0]


def test_an_agent_that_does_not_detect_answers_in_the_conversations_language(
    app_services: AppServices, sarvam: FakeSarvamServer, tmp_path: Path
) -> None:
    services = services_for(app_services, sarvam, agents_folder(tmp_path, detect=False))
    before = len(sarvam.requests)

    turn = activities.answer_turn(services, spoken_turn(services))

    assert {r.fields["language_code"] for r in sarvam.requests[before:] if r.path == "/text-to-speech"} == {"en-IN"}
    assert turn.language == "en-US"
