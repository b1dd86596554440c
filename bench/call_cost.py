"""What a call-minute costs on Azure: a measured web session priced by `bench/cost_model.py`.

One browser-style session through the devhost's local Web PubSub and Microsoft's Python client, its
turns alternating typed and spoken, providers the test fakes at the profile of `bench/first_audio.py`
(their own bills are not ours: model tokens are priced per conversation by `shared/agent/pricing.py`).
Measured over the whole session, greeting and ending included:

- Functions executions and their time: every HTTP function and activity the devhost ran (its log) and
  every orchestrator episode; their summed duration is an upper bound on the instance's active time,
  which Flex Consumption bills at the instance memory (overlapping executions are billed once);
- Web PubSub outbound messages: what the client received and what the service posted upstream, in
  2 KB increments;
- Blob operations: the Azure SDK's requests to the storage account (spans sent to a local OTLP
  receiver), writes and reads;
- Durable Task Scheduler actions: orchestration start, each activity scheduled and answered, each
  event and timer (the orchestration's history).

Per call-minute assumes `turns_per_call_minute` from `bench/prices.json`. Figures only. After the
prices change, `--reprice` prices the usage a results file recorded again without running the session.

    python bench/call_cost.py --turns 12
    python bench/call_cost.py --reprice bench/results/latest.json
"""

from __future__ import annotations

import argparse
import json
import queue
import re
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from azure.durable_functions.models.history.HistoryEventType import HistoryEventType
from azure.messaging.webpubsubclient import WebPubSubClient, WebPubSubClientCredential
from azure.messaging.webpubsubclient.models import (
    CallbackType,
    OnGroupDataMessageArgs,
    WebPubSubDataType,
    WebPubSubProtocolType,
)

from bench import cost_model, results
from bench.results import Figure, record
from devhost.process import DevHost
from shared.speech.audio import Audio, encode_wav
from shared.speech.espeak import EspeakSynthesizer
from tests.fakes.openai_server import FakeOpenAIServer
from tests.fakes.otlp_collector import FakeOtlpCollector
from tests.fakes.sarvam_server import FakeSarvamServer

REPLY = json.dumps(
    {
        "text": "We are open from 8 am to 10 pm on weekdays. On Sundays we open at 9 am and close at 6 pm. "
        "We are closed on public holidays.",
        "intent": "question",
        "cites": [],
    }
)
"""The reply and profile of `bench/first_audio.py` (a script of its own, so not imported)."""
WAIT_SECONDS = 60
HTTP_RUN = re.compile(r" -> \d{3} \(\w+, (\d+) ms\)")
ACTIVITY_RUN = re.compile(r": activity \w+ #\d+ done in (\d+) ms")
EPISODE = re.compile(r": (replayed \d+ events|continued as new|completed|failed|terminated)")
ACTIONS = {
    HistoryEventType.EXECUTION_STARTED,
    HistoryEventType.TASK_SCHEDULED,
    HistoryEventType.TASK_COMPLETED,
    HistoryEventType.TASK_FAILED,
    HistoryEventType.EVENT_RAISED,
    HistoryEventType.TIMER_FIRED,
}
"""History events that are Durable Task Scheduler actions (start 1, activity 2, event 1, timer 1)."""
SYSTEM_EVENTS = 2
"""Upstream `connect` and `connected` of the one client connection."""
BENCH = Path(__file__).stem


def executions(log: str) -> tuple[int, float]:
    """Functions executions in the devhost's log, and their summed seconds (episodes are not timed)."""
    http = [int(ms) for ms in HTTP_RUN.findall(log)]
    activities = [int(ms) for ms in ACTIVITY_RUN.findall(log)]
    episodes = len(EPISODE.findall(log))
    return len(http) + len(activities) + episodes, (sum(http) + sum(activities)) / 1000


def blob_operations(collector: FakeOtlpCollector) -> tuple[int, int]:
    """Writes (PUT) and reads (GET, HEAD) the Azure SDK sent to the storage account."""
    requests = [
        str(s.attributes.get("http.request.method"))
        for s in collector.received_spans()
        if "devstoreaccount1" in str(s.attributes.get("url.full", ""))
    ]
    return requests.count("PUT"), sum(requests.count(method) for method in ("GET", "HEAD"))


def session(host: DevHost, turns: int) -> tuple[str, list[int]]:
    """A web session of `turns` turns; its conversation id and the sizes of every outbound message."""
    question = EspeakSynthesizer().synthesize("what are your opening hours", "en-US", "")
    arrived: queue.Queue[dict[str, Any]] = queue.Queue()
    sizes: list[int] = []
    negotiated = host.post("/api/realtime/negotiate", json={}, timeout=60).json()
    client = WebPubSubClient(
        credential=WebPubSubClientCredential(negotiated["url"]),
        protocol_type=WebPubSubProtocolType.JSON,
        ack_timeout=2,
    )

    def on_group(args: OnGroupDataMessageArgs) -> None:
        message = dict(args.data)
        sizes.append(len(json.dumps(message)))
        arrived.put(message)

    client.subscribe(CallbackType.GROUP_MESSAGE, on_group)
    with client:
        for number in range(turns):
            if number % 2:
                samples = np.concatenate([question.samples, np.zeros(number, dtype=question.samples.dtype)])
                wav = encode_wav(Audio(samples, question.rate))
                sizes.append(len(wav))  # posted upstream by the service
                client.send_event("utterance", memoryview(wav), WebPubSubDataType.BINARY)
            else:
                event = {"id": f"t{number}", "text": "hours?"}
                sizes.append(len(json.dumps(event)))
                client.send_event("utterance", event, WebPubSubDataType.JSON)
            while arrived.get(timeout=WAIT_SECONDS)["type"] != "reply.done":
                pass
    host.post(f"/api/conversations/{negotiated['conversation_id']}/end")
    return str(negotiated["conversation_id"]), sizes


def durable_actions(host: DevHost, conversation_id: str) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        body = host.get(f"/devhost/instances/{conversation_id}").json()
        if body.get("runtimeStatus") == "Completed":
            break
        time.sleep(0.2)
    return sum(1 for event in body["history"] if event["EventType"] in ACTIONS)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=12, help="turns of the session, half typed and half spoken")
    parser.add_argument(
        "--reprice",
        type=Path,
        metavar="RESULTS",
        help="do not run: price the usage recorded in this results file (bench/results/latest.json) again",
    )
    args = parser.parse_args()
    table = cost_model.load_prices()
    if args.reprice:
        return reprice(args.reprice, table)
    assumptions = table["assumptions"]
    with (
        tempfile.TemporaryDirectory(prefix="bench-call-cost-") as folder,
        FakeOpenAIServer(REPLY, first_token_seconds=0.3, tokens_per_second=30.0) as model,
        FakeSarvamServer(
            transcript="what are your opening hours",
            detected_language="en-IN",
            stt_seconds=0.15,
            tts_seconds_per_sentence=0.2,
        ) as sarvam,
        FakeOtlpCollector() as collector,
    ):
        env = {
            "OPENAI_BASE_URL": f"{model.url}/v1",
            "OPENAI_MODEL": "bench-model",
            "LLM_MAX_RETRIES": "0",
            "SARVAM_API_KEY": sarvam.api_key,
            "SARVAM_BASE_URL": sarvam.url,
            "TURNS_PER_GENERATION": "50",
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        }
        host = DevHost(env, Path(folder) / "devhost.log")
        print("devhost, fakes at the profile of bench/first_audio.py, spans to a local OTLP receiver", file=sys.stderr)
        host.start()
        try:
            before = host.log_path.read_text(errors="replace")
            conversation_id, sizes = session(host, args.turns)
            actions = durable_actions(host, conversation_id)
            time.sleep(1)  # the last spans leave in their batch
        finally:
            host.stop()
        log = host.log_path.read_text(errors="replace")[len(before) :]
        count, seconds = executions(log)
        writes, reads = blob_operations(collector)
    messages = cost_model.web_pubsub_messages([*sizes, *[1] * SYSTEM_EVENTS], assumptions["web_pubsub_message_bytes"])
    usage = cost_model.per_turn(
        turns=args.turns,
        execution_seconds=seconds,
        executions=count,
        web_pubsub_messages=messages,
        blob_writes=writes,
        blob_reads=reads,
        durable_actions=actions,
        instance_memory_gb=assumptions["instance_memory_gb"],
    ).scaled(assumptions["turns_per_call_minute"])
    report(usage, table, f"one web session of {args.turns} turns")
    for name, value, unit in [*cost_model.usage_figures(usage), *cost_model.cost_figures(usage, table)]:
        record(name, value, unit)
    return 0


def report(usage: cost_model.Usage, table: dict[str, Any], what: str) -> None:
    """Print each line of the bill per call-minute, the totals and the idle month."""
    assumptions = table["assumptions"]
    lines = cost_model.usage_cost(usage, table)
    per_minute, unpriced = cost_model.total(lines)
    idle, idle_unpriced = cost_model.total(cost_model.idle_month(table))
    thousand = cost_model.per_thousand_calls(per_minute, assumptions["call_minutes"])
    print(
        f"{what}; per call-minute at {assumptions['turns_per_call_minute']} turns "
        f"a minute (prices of {table['retrieved']}, bench/prices.json):"
    )
    for name, value in vars(usage).items():
        print(f"  {name:<24} {value:10.3f}   {_dollars(lines[_line(name)])}")
    print(f"  per call-minute: ${per_minute:.6f}, leaving out for want of a price: {', '.join(unpriced) or 'nothing'}")
    print(f"  per 1,000 calls of {assumptions['call_minutes']} minutes: ${thousand:.2f}")
    print(
        f"  Web PubSub messages cost nothing more below "
        f"{cost_model.quota_call_minutes_per_day(usage, table):,.0f} call-minutes a day"
    )
    print(f"  idle deployment a month: ${idle:.2f} + unpriced {', '.join(idle_unpriced) or 'nothing'}")


def reprice(path: Path, table: dict[str, Any]) -> int:
    """Price the usage recorded in a results file again with the current table and write the new cost
    figures into it (the session is not run; the other figures stay as measured)."""
    document = json.loads(path.read_text(encoding="utf-8"))
    mine = {f["name"]: f["value"] for f in document["figures"] if f["bench"] == BENCH}
    usage = cost_model.usage_from_figures(mine)
    report(usage, table, f"the usage recorded in {path}")
    costs = cost_model.cost_figures(usage, table)
    priced = {name for name, _, _ in costs}
    kept = [f for f in document["figures"] if not (f["bench"] == BENCH and f["name"] in priced)]
    document["figures"] = kept + [asdict(Figure(BENCH, name, value, unit)) for name, value, unit in costs]
    document["repriced"] = f"{BENCH} cost figures priced again with bench/prices.json of {table['retrieved']}"
    results.write(document, path)
    return 0


def _line(usage_name: str) -> str:
    return {
        "execution_gb_seconds": "functions_execution_time",
        "executions": "functions_executions",
        "web_pubsub_messages": "web_pubsub_messages",
        "blob_writes": "blob_writes",
        "blob_reads": "blob_reads",
        "durable_actions": "durable_actions",
    }[usage_name]


def _dollars(value: float | None) -> str:
    return "no price found" if value is None else f"${value:.6f}"


if __name__ == "__main__":
    sys.exit(main())
