"""The voice page (`/web/`) in headless Chromium: Debian's `chromium`, driven by Playwright, its microphone
a WAV spoken by eSpeak at test time (Chromium's fake capture device, played once), its replies streamed
through the devhost's local Web PubSub and played by Web Audio.

Each turn is read off the page's transcript: an agent entry's `data-state` (`streaming`, `done`,
`interrupted`), `data-sentences` (sentences received), `data-played` (sentences that started playing)
and `data-first-audio-ms` (end of speech, or Send, to the first sound)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from azure.messaging.webpubsubservice import WebPubSubServiceClient
from playwright.sync_api import Browser, ConsoleMessage, Page, Response, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from devhost.__main__ import WEB_PUBSUB_KEY_FILE
from devhost.process import DevHost
from shared.speech.audio import Audio, encode_wav, resample
from shared.speech.espeak import EspeakSynthesizer
from tests.e2e.conftest import StartDevHost
from tests.fakes.openai_server import Answer, FakeOpenAIServer

CHROMIUM = "/usr/bin/chromium"
WAIT_MS = 30_000
RATE = 16000
SPEAKS_OVER_AFTER_SECONDS = 6.0
"""The question's reply sounds from about 2.5 s after the end of speech for about 7 s: the user speaks
over it 6 s after the question, with seconds of margin either way on a loaded machine."""
TWO_SENTENCES = '{"intent": "question", "text": "We open at eight. We close at six."}'
HOURS = [
    "We are open every day from eight in the morning.",
    "On Sundays we close at noon.",
    "Delivery is free above twenty euros.",
]
THREE_SENTENCES = json.dumps({"intent": "question", "text": " ".join(HOURS)})


@dataclass(frozen=True)
class FakeMicrophone:
    path: Path
    question_ends_seconds: float
    """When the question ends, from the moment the page opens the microphone."""


@pytest.fixture(scope="module")
def microphone(tmp_path_factory: pytest.TempPathFactory) -> FakeMicrophone:
    """What the fake microphone hears, once: a question, then, while its reply is still playing, the
    user speaking over it."""
    espeak = EspeakSynthesizer()

    def said(text: str) -> npt.NDArray[np.int16]:
        return resample(espeak.synthesize(text, "en-US", ""), RATE).samples

    def silence(seconds: float) -> npt.NDArray[np.int16]:
        return np.zeros(int(seconds * RATE), dtype=np.int16)

    question = np.concatenate([silence(0.5), said("what are your opening hours")])
    samples = np.concatenate([question, silence(SPEAKS_OVER_AFTER_SECONDS), said("thank you"), silence(3)])
    path = tmp_path_factory.mktemp("microphone") / "microphone.wav"
    path.write_bytes(encode_wav(Audio(samples, RATE)))
    return FakeMicrophone(path, len(question) / RATE)


@pytest.fixture(scope="module")
def model_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(first_token_seconds=0.05, tokens_per_second=15) as server:
        yield server


@pytest.fixture(scope="module")
def host(start_devhost: StartDevHost, model_server: FakeOpenAIServer) -> DevHost:
    return start_devhost(
        OPENAI_BASE_URL=f"{model_server.url}/v1",
        OPENAI_API_KEY="sk-web-page-e2e",
        LLM_TIMEOUT_SECONDS="10",
        LLM_MAX_RETRIES="0",
    )


@pytest.fixture(scope="module")
def browser(microphone: FakeMicrophone) -> Iterator[Browser]:
    assert shutil.which("chromium") == CHROMIUM, "Debian's chromium is missing: `make setup` installs it"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={microphone.path}%noloop",
            ],
        )
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def page(host: DevHost, browser: Browser, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Page]:
    """The page, connected to a new conversation with the demo agent; a screenshot is kept at the end."""
    opened = browser.new_page(bypass_csp=True)  # the page's CSP forbids eval; Playwright's waits use it
    problems: list[str] = []

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(f"{message.text} {message.location}")

    def response(answer: Response) -> None:
        if answer.status >= 400:
            problems.append(f"{answer.status} {answer.url}")

    opened.on("pageerror", lambda error: problems.append(str(error)))
    opened.on("console", console)
    opened.on("response", response)
    opened.goto(host.url("/web/"))
    opened.fill("#api-key", host.api_key)
    opened.click("#start")
    opened.wait_for_selector('li.agent[data-turn="0"][data-state="done"]', timeout=WAIT_MS)
    assert "Connected" in opened.inner_text("#status")
    yield opened
    screenshot = tmp_path_factory.mktemp("web-page") / "page.png"
    opened.screenshot(path=str(screenshot), full_page=True)
    print(f"screenshot of the page: {screenshot}")
    opened.close()
    assert problems == [], problems


def turn(page: Page, number: int, *states: str) -> dict[str, Any]:
    """The agent's entry for turn `number` once its state is one of `states`."""
    selector = ", ".join(f'li.agent[data-turn="{number}"][data-state="{state}"]' for state in states)
    try:
        entry = page.wait_for_selector(selector, timeout=WAIT_MS)
    except PlaywrightTimeout:
        transcript = page.eval_on_selector_all(
            "#transcript li",
            "items => items.map(li => `${li.className} ${JSON.stringify(li.dataset)} ${li.innerText}`)",
        )
        pytest.fail(f"turn {number} never became {states}; the transcript: {transcript}")
    assert entry is not None
    return {
        "text": entry.evaluate("li => li.firstChild.textContent"),
        "heard": entry.evaluate("li => li.user ? li.user.firstChild.textContent : null"),
        **{key: entry.get_attribute(f"data-{key}") for key in ("state", "sentences", "played", "first-audio-ms")},
    }


def wait_played(page: Page, number: int, sentences: int) -> None:
    page.wait_for_function(
        "([n, s]) => Number(document.querySelector(`li.agent[data-turn='${n}']`)?.dataset.played) >= s",
        arg=[number, sentences],
        timeout=WAIT_MS,
    )


def loudest(page: Page, after_ms: int, for_ms: int) -> float:
    """The loudest the page's output sounded over `for_ms`, sampled every 20 ms from `after_ms` on."""
    return float(
        page.evaluate(
            """async ([after, span]) => {
                await new Promise((r) => setTimeout(r, after));
                let loudest = 0;
                for (let t = 0; t < span; t += 20) {
                    loudest = Math.max(loudest, voicePage.player.loudness);
                    await new Promise((r) => setTimeout(r, 20));
                }
                return loudest;
            }""",
            [after_ms, for_ms],
        )
    )


def test_the_page_is_served_by_the_devhost_with_its_modules(host: DevHost) -> None:
    page = host.get("/web/", anonymous=True)
    assert page.status_code == 200
    assert "<title>Voice Agent Orchestrator" in page.text
    assert page.headers["Content-Security-Policy"].startswith("default-src 'self'")
    moved = host.get("/web", anonymous=True, allow_redirects=False)
    assert (moved.status_code, moved.headers["Location"]) == (308, "/web/")
    module = host.get("/web/voice-client.js", anonymous=True)
    assert (module.status_code, module.headers["Content-Type"].split(";")[0]) == (200, "text/javascript")
    assert host.get("/web/%2e%2e/requirements.txt", anonymous=True).status_code in {403, 404}
    assert host.get("/web/nothing.js", anonymous=True).status_code == 404


def test_a_typed_turn_gets_a_streamed_spoken_reply_played_gaplessly(page: Page, model_server: FakeOpenAIServer) -> None:
    model_server.script(Answer(TWO_SENTENCES))
    page.fill("#text", "when are you open")
    page.click("#send")
    wait_played(page, 1, 1)
    first = page.evaluate("document.querySelector('li.agent[data-turn=\"1\"]').dataset.state")
    done = turn(page, 1, "done")
    assert done["text"] == "We open at eight. We close at six."
    assert done["sentences"] == "2"
    wait_played(page, 1, 2)
    page.wait_for_function("() => voicePage.player.turn === 1 && voicePage.player.ended === 2", timeout=WAIT_MS)
    first_sentence, second = page.evaluate("voicePage.player.timeline")
    if second["queued"] + 0.02 <= first_sentence["end"]:  # it was there in time: no gap at all
        assert second["start"] == first_sentence["end"]
    gap_ms = (second["start"] - first_sentence["end"]) * 1000
    print(f"typed: the second sentence began {gap_ms:.0f} ms after the first ended")
    print(f"typed: first audio {done['first-audio-ms']} ms after Send (reply {first} when it sounded)")
    assert int(done["first-audio-ms"]) > 0


def test_hold_to_talk_is_answered_aloud_and_speaking_over_the_reply_stops_it(
    host: DevHost, page: Page, microphone: FakeMicrophone, model_server: FakeOpenAIServer
) -> None:
    model_server.script(Answer(THREE_SENTENCES))
    page.hover("#talk")
    page.mouse.down()
    page.wait_for_selector("#talk.held", timeout=WAIT_MS)
    page.wait_for_timeout(microphone.question_ends_seconds * 1000 + 300)  # held while the question is asked
    page.mouse.up()
    page.click("#listen")  # then the voice activity detector listens: the user speaks over the reply
    wait_played(page, 2, 1)
    question = turn(page, 2, "done", "interrupted")
    assert "opening hours" in question["heard"]
    page.wait_for_selector('li.agent[data-turn="2"][data-stopped]', timeout=WAIT_MS)
    heard = int(turn(page, 2, "done", "interrupted")["played"])
    assert 1 <= heard < len(HOURS), "the user spoke over the reply while it played, and it stopped"
    question = turn(page, 2, "interrupted")  # written or not when the user spoke, the turn keeps what was heard
    assert question["text"] == " ".join(HOURS[:heard])
    conversation = page.evaluate("voicePage.client.conversationId")
    stored = host.get(f"/api/conversations/{conversation}").json()["turns"][2]
    assert (stored["turn"], stored["reply"]["text"]) == (2, " ".join(HOURS[:heard]))

    thanks = turn(page, 3, "done")
    assert thanks["heard"] not in {"(speaking…)", "(heard; transcribing…)"}
    assert thanks["text"] == "Hello from the fake model."
    page.wait_for_function("() => voicePage.player.turn === 3 && voicePage.player.ended === 1", timeout=WAIT_MS)
    assert page.evaluate("voicePage.client.pending") is None, "the client knew its utterance's id"
    print(
        f"spoken: first audio {question['first-audio-ms']} ms after Hold to talk was released, then "
        f"{thanks['first-audio-ms']} ms after speech over its sentence {heard} ({question['state']} there; "
        f"heard as {thanks['heard']!r})"
    )


def test_stop_interrupts_the_reply_and_playback_ends_at_once(page: Page, model_server: FakeOpenAIServer) -> None:
    model_server.script(Answer(THREE_SENTENCES))
    page.fill("#text", "tell me about your hours")
    page.click("#send")
    wait_played(page, 4, 1)
    page.wait_for_function("() => voicePage.player.loudness > 0.01", timeout=WAIT_MS)
    page.click("#stop")
    assert page.evaluate("window.voicePage.player.playing") is False
    assert loudest(page, after_ms=100, for_ms=600) == 0, "the reply still sounds after Stop"
    done = turn(page, 4, "interrupted")
    assert done["text"] == "We are open every day from eight in the morning."
    assert page.evaluate("window.voicePage.player.playing") is False
    assert done["played"] == "1"


def test_a_lost_connection_is_negotiated_again_and_the_conversation_goes_on(host: DevHost, page: Page) -> None:
    before = page.evaluate("voicePage.client.connectionId")
    conversation = page.evaluate("voicePage.client.conversationId")
    access_key = (host.data_dir / WEB_PUBSUB_KEY_FILE).read_text().strip()
    service = WebPubSubServiceClient.from_connection_string(
        f"Endpoint=http://127.0.0.1:{host.webpubsub_port};AccessKey={access_key};Version=1.0;", hub="voice"
    )
    service.close_connection(before, reason="test: connection lost")
    page.wait_for_function(
        "(before) => voicePage.client.state === 'open' && voicePage.client.connectionId !== before",
        arg=before,
        timeout=WAIT_MS,
    )
    assert page.evaluate("voicePage.client.conversationId") == conversation
    page.fill("#text", "are you still there")
    page.click("#send")
    assert turn(page, 5, "done")["text"] == "Hello from the fake model."
