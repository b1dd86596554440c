// The browser's side of speech: microphone capture at 16 kHz with an energy-based voice activity
// detector, and gapless playback of a reply's sentences. Plain ES module, no framework.

export const RATE = 16000;
const FRAME = RATE / 50; // 20 ms
const START_FRAMES = 3; // 60 ms of energy starts speech
const END_FRAMES = 35; // 700 ms of quiet ends it
const PRE_ROLL_FRAMES = 15; // keep 300 ms before the start: its first syllable
const MAX_SECONDS = 20; // under the 1 MB message limit once in base64
const LEAD_SECONDS = 0.02; // a sentence due now starts this much later, so its start is never in the past

/** Linear resampling of `input` (at `from` Hz) to 16 kHz, averaging each output's span first. */
export function downsample(input, from) {
  if (from === RATE) return Float32Array.from(input);
  const ratio = from / RATE;
  const output = new Float32Array(Math.floor(input.length / ratio));
  for (let i = 0; i < output.length; i++) {
    const start = Math.floor(i * ratio);
    const end = Math.min(input.length, Math.max(start + 1, Math.floor((i + 1) * ratio)));
    let sum = 0;
    for (let j = start; j < end; j++) sum += input[j];
    output[i] = sum / (end - start);
  }
  return output;
}

export function toPcm16(samples) {
  const pcm = new Int16Array(samples.length);
  for (let i = 0; i < samples.length; i++) pcm[i] = Math.max(-1, Math.min(1, samples[i])) * 0x7fff;
  return pcm;
}

function rms(frame) {
  let sum = 0;
  for (const s of frame) sum += s * s;
  return Math.sqrt(sum / frame.length);
}

/**
 * Energy VAD over 20 ms frames: speech starts after START_FRAMES loud frames and ends after END_FRAMES
 * quiet ones. "Loud" is above both a floor (0.015 RMS) and three times the running noise level, so a
 * steady hum does not count as speech.
 */
export class VoiceActivity {
  constructor({ onStart, onEnd }) {
    this.onStart = onStart;
    this.onEnd = onEnd;
    this.noise = 0.005;
    this.loud = 0;
    this.quiet = 0;
    this.speaking = false;
    this.frames = [];
    this.lastVoiceAt = 0;
  }

  push(frame, at) {
    const level = rms(frame);
    const voiced = level > Math.max(0.015, this.noise * 3);
    if (!voiced) this.noise = this.noise * 0.95 + level * 0.05;
    this.frames.push(frame);
    if (!this.speaking) {
      this.loud = voiced ? this.loud + 1 : 0;
      if (this.frames.length > PRE_ROLL_FRAMES + START_FRAMES) this.frames.shift();
      if (this.loud >= START_FRAMES) {
        this.speaking = true;
        this.quiet = 0;
        this.lastVoiceAt = at;
        this.onStart();
      }
      return;
    }
    if (voiced) {
      this.quiet = 0;
      this.lastVoiceAt = at;
    } else {
      this.quiet += 1;
    }
    if (this.quiet >= END_FRAMES || this.frames.length >= (MAX_SECONDS * RATE) / FRAME) this.finish();
  }

  /** Ends the utterance now (push-to-talk released): hands its samples and its end of speech. */
  finish() {
    const samples = new Float32Array(this.frames.length * FRAME);
    this.frames.forEach((frame, i) => samples.set(frame, i * FRAME));
    const endedAt = this.lastVoiceAt;
    this.speaking = false;
    this.loud = 0;
    this.frames = [];
    this.onEnd(samples, endedAt);
  }
}

/**
 * The microphone as 20 ms frames of 16 kHz samples. The context runs at the device's own rate (some
 * browsers refuse to connect a microphone to a context of another rate) and frames are resampled here.
 */
export class Microphone {
  constructor(onFrame) {
    this.onFrame = onFrame;
    this.context = null;
    this.stream = null;
    this.pending = new Float32Array(0);
  }

  async start() {
    this.stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
    this.context = new AudioContext();
    await this.context.audioWorklet.addModule(new URL("./capture-worklet.js", import.meta.url));
    const source = this.context.createMediaStreamSource(this.stream);
    const capture = new AudioWorkletNode(this.context, "capture");
    capture.port.onmessage = (event) => this.take(event.data);
    source.connect(capture);
  }

  take(block) {
    const samples = downsample(block, this.context.sampleRate);
    const joined = new Float32Array(this.pending.length + samples.length);
    joined.set(this.pending);
    joined.set(samples, this.pending.length);
    let at = 0;
    for (; at + FRAME <= joined.length; at += FRAME) this.onFrame(joined.slice(at, at + FRAME), performance.now());
    this.pending = joined.slice(at);
  }

  async stop() {
    if (this.stream) for (const track of this.stream.getTracks()) track.stop();
    if (this.context) await this.context.close();
    this.stream = null;
    this.context = null;
  }
}

/**
 * Plays a turn's sentences back to back: each WAV is decoded and scheduled to start when the one before
 * ends (Web Audio's clock, so no gap and no overlap), in `index` order whatever order they decode in.
 */
export class Player {
  constructor({ onStart } = {}) {
    this.context = null;
    this.onStart = onStart || (() => {});
    this.reset(null);
  }

  /** Call from a click: browsers let a context play only after a user gesture. */
  unlock() {
    if (!this.context) {
      this.context = new AudioContext();
      this.output = this.context.createAnalyser();
      this.output.connect(this.context.destination);
    }
    return this.context.resume();
  }

  /** How loud the reply sounds right now (RMS of the last few milliseconds of output). */
  get loudness() {
    if (!this.context) return 0;
    const samples = new Float32Array(this.output.fftSize);
    this.output.getFloatTimeDomainData(samples);
    return rms(samples);
  }

  reset(turn) {
    for (const source of this.sources || []) {
      source.onended = null;
      source.stop();
    }
    this.turn = turn;
    this.sources = [];
    this.buffers = new Map();
    this.nextIndex = 0;
    this.nextStart = 0;
    this.timeline = []; // {queued, start, end} of each sentence, on the context's clock
    this.started = 0; // sentences of the turn that began to sound
    this.ended = 0; // and that sounded to their end
  }

  async add(turn, index, wav) {
    if (turn !== this.turn) this.reset(turn);
    this.unlock();
    const buffer = await this.context.decodeAudioData(wav.slice(0));
    if (turn !== this.turn) return;
    this.buffers.set(index, buffer);
    while (this.buffers.has(this.nextIndex)) {
      this.schedule(this.buffers.get(this.nextIndex));
      this.buffers.delete(this.nextIndex);
      this.nextIndex += 1;
    }
  }

  schedule(buffer) {
    const source = this.context.createBufferSource();
    source.buffer = buffer;
    source.connect(this.output);
    const queued = this.context.currentTime;
    const at = Math.max(queued + LEAD_SECONDS, this.nextStart);
    source.start(at);
    this.nextStart = at + buffer.duration;
    this.timeline.push({ queued, start: at, end: this.nextStart });
    const delay = (at - this.context.currentTime) * 1000;
    const turn = this.turn;
    setTimeout(() => {
      if (this.turn !== turn || !this.sources.includes(source)) return;
      this.started += 1;
      this.onStart(turn, this.started);
    }, Math.max(0, delay));
    source.onended = () => {
      this.ended += 1;
      this.sources = this.sources.filter((s) => s !== source);
    };
    this.sources.push(source);
  }

  /** True while a sentence is playing or waiting its turn to play. */
  get playing() {
    return this.sources.length > 0;
  }

  /** Stops at once; answers how many sentences were heard, the one cut off included. */
  stop() {
    const heard = this.started;
    this.reset(this.turn);
    return heard;
  }
}
