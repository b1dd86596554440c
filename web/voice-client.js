// A client of the realtime protocol (docs/realtime-protocol.md) for browsers, with no framework and no
// build step: negotiate, connect with a plain WebSocket speaking Web PubSub's `json.webpubsub.azure.v1`
// subprotocol, send utterances (typed, or 16 kHz mono PCM/WAV), and hear replies as events.
//
// A plain WebSocket rather than Microsoft's `@azure/web-pubsub-client`: that package is published for
// bundlers (it imports other npm packages by bare name), so a page loading it unbundled would need an
// import map of its whole dependency tree; the subprotocol is six small JSON frames
// (learn.microsoft.com, "Azure Web PubSub supported JSON WebSocket subprotocol").
//
// Events (a `CustomEvent`, its `detail` the message unless said otherwise):
//   "delta"   {turn, text}: the turn's text so far, placed by offset, deduplicated
//   "audio"   {turn, index, text, wav: ArrayBuffer, duration_seconds}: a sentence, once per (turn, index)
//   "restart" {turn}: drop what you have of this turn's reply
//   "done"    the `reply.done` message
//   "ended"   the `conversation.ended` message (the socket is closed after it)
//   "error"   the `error` message that was not retried
//   "state"   {state}: "connecting", "open", "reconnecting", "closed"

export const SUBPROTOCOL = "json.webpubsub.azure.v1";
const RETRIED_CODES = new Set(["turn_in_progress", "conversation_starting"]);
const RETRY_DELAY_MS = 300;
const MAX_RETRIES = 40;
const RECONNECT_DELAYS_MS = [250, 1000, 3000];

export class NegotiateError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Base64 of bytes, in chunks (a spread of a whole second of audio overflows the call stack). */
export function toBase64(bytes) {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

export function fromBase64(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes.buffer;
}

/** Text of a turn assembled from `reply.delta` messages by their `offset`, so a resent delta is harmless. */
class TurnText {
  constructor() {
    this.text = "";
  }

  place(offset, text) {
    if (offset > this.text.length) return false; // a gap: wait for reply.done's text
    const end = offset + text.length;
    if (end <= this.text.length) return false;
    this.text = this.text.slice(0, offset) + text;
    return true;
  }
}

export class VoiceClient extends EventTarget {
  /**
   * @param {{baseUrl?: string, apiKey?: string, token?: string}} options where the API is (the page's
   *   origin if none) and the credential negotiate asks for: an API key or a bearer token.
   */
  constructor({ baseUrl = "", apiKey = "", token = "" } = {}) {
    super();
    this.baseUrl = baseUrl.replace(/\/$/, "");
    this.apiKey = apiKey;
    this.token = token;
    this.conversationId = null;
    this.connectionId = null;
    this.socket = null;
    this.state = "closed";
    this.ackId = 0;
    this.texts = new Map(); // turn → TurnText
    this.sentences = new Set(); // "turn/index" already handed out
    this.pending = null; // {id, frame, retries}: the utterance not yet answered
    this.ended = false;
  }

  /** Starts a conversation with `agent` (or rejoins `conversationId`); resolves with the negotiation. */
  async start({ agent, language, conversationId } = {}) {
    const body = conversationId ? { conversation_id: conversationId } : { agent, language };
    const negotiated = await this.negotiate(body);
    this.conversationId = negotiated.conversation_id;
    this.ended = false;
    await this.connect(negotiated.url);
    return negotiated;
  }

  async negotiate(body) {
    const headers = { "Content-Type": "application/json" };
    if (this.apiKey) headers["X-API-Key"] = this.apiKey;
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    const clean = Object.fromEntries(Object.entries(body).filter(([, v]) => v !== undefined && v !== ""));
    const response = await fetch(`${this.baseUrl}/api/realtime/negotiate`, {
      method: "POST",
      headers,
      body: JSON.stringify(clean),
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = answer.error || {};
      throw new NegotiateError(response.status, error.code || "negotiate_failed", error.message || response.statusText);
    }
    return answer;
  }

  connect(url) {
    this.setState(this.state === "reconnecting" ? "reconnecting" : "connecting");
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(url, SUBPROTOCOL);
      this.socket = socket;
      let opened = false;
      socket.onmessage = (event) => {
        const frame = JSON.parse(event.data);
        if (frame.type === "system" && frame.event === "connected") {
          opened = true;
          this.connectionId = frame.connectionId;
          this.setState("open");
          resolve();
          if (this.pending) this.resend();
        } else {
          this.receive(frame);
        }
      };
      socket.onclose = () => {
        if (this.socket !== socket) return;
        this.socket = null;
        if (!opened) reject(new Error("the connection was refused"));
        else this.lost();
      };
    });
  }

  /** The reconnect rule of the protocol: negotiate again for the same conversation, a few times. */
  async lost() {
    if (this.ended || this.state === "closed") return;
    this.setState("reconnecting");
    for (const delay of RECONNECT_DELAYS_MS) {
      await new Promise((r) => setTimeout(r, delay));
      if (this.ended || this.state === "closed") return;
      try {
        const negotiated = await this.negotiate({ conversation_id: this.conversationId });
        await this.connect(negotiated.url);
        return;
      } catch (error) {
        if (error instanceof NegotiateError && error.status < 500 && error.status !== 429) break;
      }
    }
    this.setState("closed");
  }

  setState(state) {
    this.state = state;
    this.emit("state", { state });
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  send(event, dataType, data) {
    const frame = { type: "event", event, dataType, data, ackId: ++this.ackId };
    if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(frame));
    return frame;
  }

  /** A typed utterance; its id makes a resend the same turn. Returns the id. */
  sendText(text, id = `t-${crypto.randomUUID()}`) {
    this.pending = { id, event: "utterance", dataType: "json", data: { id, text }, retries: 0 };
    this.send("utterance", "json", this.pending.data);
    return id;
  }

  /**
   * A spoken utterance: 16 kHz mono 16-bit PCM (an Int16Array) or a WAV (an ArrayBuffer starting with
   * RIFF). Its id is the agent's: `wav-` and the first 40 hex digits of the bytes' SHA-256. Returns it.
   */
  async sendAudio(audio) {
    const bytes = audio instanceof Int16Array ? new Uint8Array(audio.buffer, audio.byteOffset, audio.byteLength) : new Uint8Array(audio);
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
    const id = `wav-${Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("").slice(0, 40)}`;
    this.pending = { id, event: "utterance", dataType: "binary", data: toBase64(bytes), retries: 0 };
    this.send("utterance", "binary", this.pending.data);
    return id;
  }

  resend() {
    const { event, dataType, data } = this.pending;
    this.send(event, dataType, data);
  }

  /** Barge-in: stop `turn`'s reply; `played` sentences were heard (the one cut off included). */
  interrupt(turn, played) {
    this.send("interrupt", "json", { turn, played });
  }

  end() {
    this.send("end", "json", {});
  }

  close() {
    this.setState("closed");
    if (this.socket) this.socket.close();
    this.socket = null;
  }

  receive(frame) {
    if (frame.type !== "message" || frame.dataType !== "json" || typeof frame.data !== "object") return;
    const message = frame.data;
    switch (message.type) {
      case "reply.delta": {
        const text = this.turnText(message.turn);
        if (text.place(message.offset, message.text)) this.emit("delta", { turn: message.turn, text: text.text });
        break;
      }
      case "reply.audio": {
        const key = `${message.turn}/${message.index}`;
        if (this.sentences.has(key) || !message.audio) break;
        this.sentences.add(key);
        this.emit("audio", { ...message, wav: fromBase64(message.audio), audio: undefined });
        break;
      }
      case "reply.restart":
        this.texts.delete(message.turn);
        for (const key of [...this.sentences]) if (key.startsWith(`${message.turn}/`)) this.sentences.delete(key);
        this.emit("restart", message);
        break;
      case "reply.done":
        if (this.pending && this.pending.id === message.id) this.pending = null;
        this.emit("done", message);
        break;
      case "conversation.ended":
        this.ended = true;
        this.pending = null;
        this.emit("ended", message);
        this.close();
        break;
      case "error":
        if (this.pending && RETRIED_CODES.has(message.code) && this.pending.retries < MAX_RETRIES) {
          this.pending.retries += 1;
          setTimeout(() => this.pending && this.resend(), RETRY_DELAY_MS);
        } else {
          if (this.pending && message.code !== "nothing_to_interrupt") this.pending = null;
          this.emit("error", message);
        }
        break;
    }
  }

  turnText(turn) {
    if (!this.texts.has(turn)) this.texts.set(turn, new TurnText());
    return this.texts.get(turn);
  }
}
