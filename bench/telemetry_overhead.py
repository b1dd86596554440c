"""What telemetry costs a turn: without an exporter, and exporting over OTLP to a local receiver.

Two measurements, figures only (nothing here passes or fails):
- in this process, the telemetry of one typed turn as the app makes it (the request's span, the trace
  carried to the activity's span, one model call, three spoken sentences, the turn's metrics), timed
  over many turns, with telemetry off and with OTLP export to a local receiver;
- through two devhosts with the embedded stand-ins, the same typed turns with telemetry off and with
  OTLP export: our overhead per turn (the request's time less the time inside the adapters), the
  Postgres, Redis and Blob spans included.
The issue's budget: telemetry costs at most 5 % of a turn's overhead with an exporter configured.

    python bench/telemetry_overhead.py --turns 3000 --conversations 5
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.results import record
from devhost.process import DevHost
from tests.fakes.otlp_collector import FakeOtlpCollector

TYPED = ["hello there", "what are your opening hours", "how much does delivery cost", "where are you located"]

ONE_TURN = """
import sys, time
from shared import telemetry
from shared.config import Settings
from shared.models import ModelUsage, TurnKind, TurnRecord

telemetry.configure(Settings(otel_exporter_otlp_endpoint=sys.argv[1]))
turn = TurnRecord(
    conversation_id="c", turn=1, kind=TurnKind.UTTERANCE, request_id="r", intent="question", user_text="hi",
    reply_text="We open at eight. We close at ten. Sundays too.", stt_ms=None, agent_ms=20.0, tts_ms=30.0,
    first_audio_ms=400.0, tts_engine="offline",
    llm=ModelUsage(provider="openai", model="gpt-4o", input_tokens=100, output_tokens=20, cost_usd=0.001),
)

def one_turn():
    with telemetry.span("take_turn", {"http.request.method": "POST"}, kind="SERVER", headers={}):
        carried = telemetry.traceparent()
        about = {"voice_agent.conversation.id": "c", "voice_agent.turn": 1}
        with telemetry.span("answer_turn", about, parent=carried):
            with telemetry.model_call("openai", "gpt-4o") as call:
                call.first_chunk()
                call.answered("gpt-4o", 100, 20, "stop")
            for _ in range(3):
                with telemetry.speech_call("tts", "offline", "en-US", characters=16):
                    pass
            telemetry.turn_answered(turn, 30.0)
        telemetry.turn_overhead(12.0)

for _ in range(300):
    one_turn()
n = int(sys.argv[2])
started = time.perf_counter()
for _ in range(n):
    one_turn()
print((time.perf_counter() - started) / n * 1e6)
"""


def in_process_us(endpoint: str, turns: int) -> float:
    """Microseconds of telemetry per turn, in a fresh interpreter (providers are installed once per process)."""
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [sys.executable, "-c", ONE_TURN, endpoint, str(turns)], cwd=root, capture_output=True, text=True, check=True
    )
    return float(result.stdout.strip().splitlines()[-1])


def overheads(host: DevHost, conversations: int) -> list[float]:
    measured = []
    for _ in range(conversations):
        conversation_id = host.post("/api/conversations", json={}).json()["conversation_id"]
        for text in TYPED:
            response = host.post(f"/api/conversations/{conversation_id}/turns", json={"text": text})
            response.raise_for_status()
            measured.append(float(response.json()["timings_ms"]["overhead"]))
        host.post(f"/api/conversations/{conversation_id}/end")
    return measured


def through_devhosts(folder: Path, endpoint: str, conversations: int) -> list[float]:
    settings = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint} if endpoint else {}
    host = DevHost(settings, folder / "devhost.log")
    host.start()
    try:
        overheads(host, 1)  # warm: models, voices and pools load on first use
        return overheads(host, conversations)
    finally:
        host.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=3000, help="turns timed in process")
    parser.add_argument("--conversations", type=int, default=5, help="conversations per devhost")
    args = parser.parse_args()
    with FakeOtlpCollector() as receiver, tempfile.TemporaryDirectory(prefix="bench-") as folder:
        off_us = in_process_us("", args.turns)
        otlp_us = in_process_us(receiver.url, args.turns)
        print(f"telemetry per turn, in process ({args.turns} turns):")
        print(f"  off (metrics for /api/metrics only)  {off_us:8.1f} us")
        print(f"  OTLP to a local receiver             {otlp_us:8.1f} us   ({len(receiver.spans)} spans received)")
        print("starting devhosts with embedded stand-ins ...", file=sys.stderr)
        off = through_devhosts(Path(folder), "", args.conversations)
        exported = through_devhosts(Path(folder), receiver.url, args.conversations)
    off_p50, on_p50 = statistics.median(off), statistics.median(exported)
    print(f"our overhead per turn through a devhost ({len(off)} turns each):")
    print(f"  off   p50 {off_p50:7.1f} ms")
    print(f"  OTLP  p50 {on_p50:7.1f} ms   (difference {on_p50 - off_p50:+.1f} ms, run-to-run noise included)")
    print(f"telemetry with OTLP as a share of the overhead: {otlp_us / 1000 / off_p50:.1%} (budget 5 %)")
    record("telemetry per turn, OTLP export, in process", otlp_us / 1000, "ms")
    record("telemetry with OTLP / overhead per turn", otlp_us / 1000 / off_p50 * 100, "%")
    record("overhead p50 through a devhost, OTLP (stores' spans too) - off", on_p50 - off_p50, "ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
