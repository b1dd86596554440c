// The try-it page: one conversation with an agent by voice or by text, its transcript, and for every
// turn the time from the end of speech to the reply's first sound. The protocol is voice-client.js's,
// the audio voice-audio.js's; this file only wires them to the page.

import { Microphone, Player, RATE, VoiceActivity, toPcm16 } from "./voice-audio.js";
import { NegotiateError, VoiceClient } from "./voice-client.js";

const $ = (id) => document.getElementById(id);
const KEY_STORE = "voice-agent-api-key";
const API = (new URLSearchParams(location.search).get("api") || "").replace(/\/$/, ""); // the page's origin if none

let client = null;
let microphone = null;
let listening = false;
let held = false;
let asked = null; // {endedAt, entry}: the utterance whose reply has not begun
let replying = null; // the turn whose reply is streaming or playing
const agents = new Map(); // turn → its transcript entry

const player = new Player({ onStart: firstSound });
const activity = new VoiceActivity({ onStart: speechStarted, onEnd: speechEnded });

function status(text) {
  $("status").textContent = text;
}

function entry(kind, text) {
  const li = document.createElement("li");
  li.className = kind;
  li.append(document.createTextNode(text));
  $("transcript").append(li);
  li.scrollIntoView({ block: "end" });
  return li;
}

function setText(li, text) {
  li.firstChild.textContent = text;
}

function note(li, text) {
  let small = li.querySelector("small");
  if (!small) small = li.appendChild(document.createElement("small"));
  small.textContent = text;
}

function agentEntry(turn) {
  if (!agents.has(turn)) {
    const li = entry("agent", "");
    li.dataset.turn = turn;
    li.dataset.state = "streaming";
    li.dataset.sentences = "0";
    li.dataset.played = "0";
    if (asked) {
      li.endedAt = asked.endedAt;
      li.user = asked.entry;
      asked = null;
    }
    agents.set(turn, li);
  }
  return agents.get(turn);
}

function firstSound(turn, started) {
  const li = agents.get(turn);
  if (!li) return;
  li.dataset.played = String(started);
  if (started === 1 && li.endedAt !== undefined) {
    const ms = Math.round(performance.now() - li.endedAt);
    li.dataset.firstAudioMs = String(ms);
    note(li, `first audio ${ms} ms after the end of speech`);
  }
}

function enable(connected) {
  for (const id of ["end", "listen", "talk", "stop", "text", "send"]) $(id).disabled = !connected;
  $("start").disabled = connected;
}

async function loadAgents(key) {
  const response = await fetch(`${API}/api/agents?limit=100`, { headers: { "X-API-Key": key } }).catch(() => null);
  if (!response || !response.ok) return;
  const select = $("agent");
  const chosen = select.value;
  select.replaceChildren(new Option("(default)", ""));
  for (const agent of (await response.json()).items) select.append(new Option(agent.display_name || agent.name, agent.name));
  select.value = chosen;
}

async function start(event) {
  event.preventDefault();
  const key = $("api-key").value.trim();
  sessionStorage.setItem(KEY_STORE, key);
  await player.unlock();
  client = new VoiceClient({ baseUrl: API, apiKey: key });
  client.addEventListener("delta", ({ detail }) => {
    replying = detail.turn;
    setText(agentEntry(detail.turn), detail.text);
  });
  client.addEventListener("audio", ({ detail }) => {
    replying = detail.turn;
    const li = agentEntry(detail.turn);
    li.dataset.sentences = String(Number(li.dataset.sentences) + 1);
    if (li.dataset.stopped) return;
    player.add(detail.turn, detail.index, detail.wav);
  });
  client.addEventListener("restart", ({ detail }) => {
    const li = agentEntry(detail.turn);
    setText(li, "");
    li.dataset.sentences = "0";
    player.reset(detail.turn);
  });
  client.addEventListener("done", ({ detail }) => {
    const li = agentEntry(detail.turn);
    setText(li, detail.text);
    li.dataset.state = detail.interrupted ? "interrupted" : "done";
    if (li.user && detail.transcript) setText(li.user, detail.transcript);
    if (detail.interrupted) note(li, `${li.querySelector("small")?.textContent ?? ""} (interrupted)`.trim());
  });
  client.addEventListener("ended", ({ detail }) => {
    status(`The conversation ended (${detail.outcome}).`);
    stopListening();
    enable(false);
  });
  client.addEventListener("error", ({ detail }) => entry("error", `${detail.code}: ${detail.message}`));
  client.addEventListener("state", ({ detail }) => {
    if (detail.state === "reconnecting") status("Connection lost; reconnecting…");
    if (detail.state === "open") status(`Connected: conversation ${client.conversationId}.`);
  });
  status("Connecting…");
  try {
    const negotiated = await client.start({ agent: $("agent").value || undefined });
    if (negotiated.greeting) {
      const greeting = agentEntry(0);
      greeting.dataset.state = "done";
      setText(greeting, negotiated.greeting);
    }
    enable(true);
    loadAgents(key);
  } catch (error) {
    status(error instanceof NegotiateError ? `Could not start: ${error.code} (${error.message})` : `Could not start: ${error.message}`);
  }
}

/** Stops the reply being heard (barge-in) and tells the agent how much of it was heard: while it is still
 * written, or (usually) after, while it still plays; the turn then keeps only the sentences that began. */
function bargeIn() {
  const heard = player.turn === replying ? player.started : 0;
  const sounding = player.playing && player.turn === replying;
  if (player.playing) player.stop();
  const li = agents.get(replying);
  if (!li || li.dataset.stopped) return;
  li.dataset.stopped = "true";
  if (li.dataset.state === "streaming" || sounding) client.interrupt(replying, heard);
}

function speechStarted() {
  bargeIn();
  asked = { endedAt: undefined, entry: entry("user", "(speaking…)") };
}

function speechEnded(samples, endedAt) {
  if (!asked) return;
  if (samples.length < RATE / 5) {
    asked.entry.remove();
    asked = null;
    return;
  }
  asked.endedAt = endedAt;
  setText(asked.entry, "(heard; transcribing…)");
  client.sendAudio(toPcm16(samples));
}

function frame(samples, at) {
  let peak = 0;
  for (const s of samples) peak = Math.max(peak, Math.abs(s));
  $("level").value = peak;
  if (held) {
    activity.frames.push(samples);
    activity.lastVoiceAt = at;
  } else if (listening) {
    activity.push(samples, at);
  }
}

async function ensureMicrophone() {
  if (microphone) return true;
  microphone = new Microphone(frame);
  try {
    await microphone.start();
    return true;
  } catch (error) {
    microphone = null;
    status(`No microphone: ${error.message}. Type instead.`);
    return false;
  }
}

function stopListening() {
  listening = false;
  $("listen").setAttribute("aria-pressed", "false");
  $("listen").textContent = "Microphone: off";
  if (microphone) microphone.stop();
  microphone = null;
}

async function toggleListening() {
  if (listening) return stopListening();
  if (!(await ensureMicrophone())) return;
  listening = true;
  $("listen").setAttribute("aria-pressed", "true");
  $("listen").textContent = "Microphone: on (speak any time)";
}

async function pressTalk() {
  if (held || !(await ensureMicrophone())) return;
  held = true;
  $("talk").classList.add("held");
  activity.speaking = false;
  activity.frames = [];
  speechStarted();
}

function releaseTalk() {
  if (!held) return;
  held = false;
  $("talk").classList.remove("held");
  activity.finish();
}

function sendTyped(event) {
  event.preventDefault();
  const text = $("text").value.trim();
  if (!text) return;
  bargeIn();
  asked = { endedAt: performance.now(), entry: entry("user", text) };
  client.sendText(text);
  $("text").value = "";
}

$("session").addEventListener("submit", start);
$("end").addEventListener("click", () => client.end());
$("listen").addEventListener("click", toggleListening);
$("talk").addEventListener("pointerdown", pressTalk);
$("talk").addEventListener("pointerup", releaseTalk);
$("talk").addEventListener("pointerleave", releaseTalk);
$("stop").addEventListener("click", bargeIn);
$("typed").addEventListener("submit", sendTyped);
$("api-key").addEventListener("change", () => loadAgents($("api-key").value.trim()));
$("api-key").value = sessionStorage.getItem(KEY_STORE) || "";
if ($("api-key").value) loadAgents($("api-key").value);
// For the console (and the page's test): the connection, and whether a reply is sounding.
window.voicePage = {
  player,
  get client() {
    return client;
  },
};
