// The call page: one button starts and ends a voice call with the service, over WebRTC
// (OpenAI-style SDP exchange, events on the "oai-events" data channel) or, when WebRTC
// fails, over the WebSocket with the same events and audio through AudioWorklets.
//
// First-packet latency, per turn, is measured here: from the last 20 ms block in which the
// microphone carried speech to the moment the first reply audio is heard. Over WebRTC
// "heard" is the first poll (every 10 ms) of the audio receiver's synchronization source
// whose audioLevel is above silence; over the WebSocket it is when the reply player starts
// playing the response's first samples.

const CALLS_URL = "/v1/realtime/calls";
const ICE_SERVERS_URL = "/v1/realtime/ice-servers";
const EVENTS_CHANNEL = "oai-events";
const WORKLETS_URL = "/static/audio-worklets.js";
const INPUT_RATE = 24000;
const VOICE_LEVEL = 0.01; // microphone RMS (about -40 dBFS) that counts as speech
const VOICE_BELOW_PEAK = 0.05; // ... and within 26 dB of the utterance's loudest block
const HEARD_LEVEL = 0.005; // reply audioLevel that counts as audible
const LEVEL_POLL_MS = 10;
const ICE_GATHER_TIMEOUT_MS = 2000;
const CONNECT_TIMEOUT_MS = 10000;
const SEND_BLOCKS = 2; // WebSocket: microphone blocks (20 ms) per input_audio_buffer.append

const $ = (id) => document.getElementById(id);
const now = () => performance.now();

// A service with API keys wants a credential. Never put a server key in a page: an operator's
// backend mints an ephemeral client secret (POST /v1/realtime/client_secrets) and opens this
// page as /#client_secret=ek_... (a fragment never reaches a server or its logs), or the user
// pastes one into the page's field.
function takeSecretFromFragment() {
  const match = /(?:^#|&)client_secret=([^&]+)/.exec(location.hash);
  if (!match) return;
  $("credential").value = decodeURIComponent(match[1]);
  history.replaceState(null, "", location.pathname + location.search);
}

function credential() {
  return $("credential").value.trim();
}

function authHeaders() {
  const secret = credential();
  return secret ? { Authorization: `Bearer ${secret}` } : {};
}

function eventId() {
  return "event_" + Math.random().toString(16).slice(2) + Date.now().toString(16);
}

function base64FromBytes(bytes) {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

// Browsers expose navigator.mediaDevices only in a secure context: an HTTPS page, or one
// from localhost / 127.0.0.1. A page fetched over plain HTTP from any other address has no
// getUserMedia at all, and the raw error says nothing a user can act on.
function microphoneProblem({ isSecureContext, hasGetUserMedia, host }) {
  if (hasGetUserMedia) return null;
  if (!isSecureContext) {
    return (
      `The microphone is unavailable: this page came over plain HTTP from ${host}, and ` +
      "browsers give the microphone only to HTTPS pages (or pages on localhost). Serve it " +
      "over HTTPS: step-realtime serve --ssl-certfile CERT.pem --ssl-keyfile KEY.pem (or " +
      `behind a TLS proxy), then open https://${host}/.`
    );
  }
  return "The microphone is unavailable: this browser has no getUserMedia (navigator.mediaDevices).";
}

function thisPage() {
  return {
    isSecureContext: window.isSecureContext,
    hasGetUserMedia: Boolean(navigator.mediaDevices && navigator.mediaDevices.getUserMedia),
    host: location.host,
  };
}

// Microphone RMS to the meter's 0..1: -60 dBFS and below read 0, full scale reads 1.
function meterValue(level) {
  if (level <= 0) return 0;
  return Math.min(1, Math.max(0, (20 * Math.log10(level) + 60) / 60));
}

function floatsFromPcm16Base64(text) {
  const binary = atob(text);
  const samples = new Float32Array(binary.length >> 1);
  for (let i = 0; i < samples.length; i++) {
    const value = binary.charCodeAt(2 * i) | (binary.charCodeAt(2 * i + 1) << 8);
    samples[i] = (value >= 0x8000 ? value - 0x10000 : value) / 32768;
  }
  return samples;
}

// -- what the page shows ------------------------------------------------------------------

class CallView {
  constructor() {
    this.transcript = $("transcript");
    this.users = new Map();
    this.replies = new Map();
  }

  setState(state) {
    document.body.dataset.state = state;
    $("state").textContent = state;
  }

  setVia(text) {
    $("via").textContent = text;
  }

  notice(text) {
    const notice = $("notice");
    notice.textContent = text || "";
    notice.hidden = !text;
  }

  entry(kind, who) {
    const entry = document.createElement("div");
    entry.className = `turn ${kind}`;
    const label = document.createElement("div");
    label.className = "who";
    label.textContent = who;
    const text = document.createElement("div");
    text.className = "text";
    entry.append(label, text);
    this.transcript.append(entry);
    entry.scrollIntoView({ block: "end" });
    return entry;
  }

  user(itemId) {
    let entry = this.users.get(itemId);
    if (!entry) {
      entry = this.entry("user", "you");
      entry.dataset.itemId = itemId;
      this.users.set(itemId, entry);
    }
    return entry;
  }

  setUserText(itemId, text) {
    this.user(itemId).querySelector(".text").textContent = text;
  }

  reply(responseId) {
    let entry = this.replies.get(responseId);
    if (!entry) {
      entry = this.entry("assistant", "assistant");
      entry.dataset.responseId = responseId;
      const details = document.createElement("details");
      details.className = "reasoning";
      details.open = false;
      details.hidden = true;
      const summary = document.createElement("summary");
      summary.textContent = "reasoning";
      details.append(summary, document.createElement("pre"));
      const latency = document.createElement("div");
      latency.className = "latency";
      const timings = document.createElement("div");
      timings.className = "timings";
      entry.insertBefore(details, entry.querySelector(".text"));
      entry.append(latency, timings);
      this.replies.set(responseId, entry);
    }
    return entry;
  }

  addReasoning(responseId, delta) {
    const details = this.reply(responseId).querySelector(".reasoning");
    details.hidden = false;
    details.querySelector("pre").textContent += delta;
  }

  addReplyText(responseId, delta) {
    this.reply(responseId).querySelector(".text").textContent += delta;
  }

  setReplyText(responseId, text) {
    this.reply(responseId).querySelector(".text").textContent = text;
  }

  setLatency(responseId, turn) {
    const parts = [];
    if (turn.latencyMs !== null) parts.push(`first packet ${Math.round(turn.latencyMs)} ms`);
    if (turn.serverFirstAudioMs !== null) {
      parts.push(`server: first audio sent ${Math.round(turn.serverFirstAudioMs)} ms after end of speech`);
    }
    if (turn.cut) parts.push("cut off: you spoke over it");
    else if (turn.status && turn.status !== "completed") parts.push(turn.status);
    const entry = this.reply(responseId);
    entry.classList.toggle("cut", turn.cut);
    entry.querySelector(".latency").textContent = parts.join(" · ");
    if (turn.stages) {
      const timings = entry.querySelector(".timings");
      timings.replaceChildren(
        ...Object.entries(turn.stages).map(([stage, ms]) => {
          const chip = document.createElement("span");
          chip.textContent = `${stage.replaceAll("_", " ")} ${Math.round(ms)} ms`;
          return chip;
        }),
      );
      timings.title = `server stage timings, ms after ${turn.stagesOrigin ?? "the end of your turn"}`;
    }
  }

  setLevel(level) {
    $("mic-level").value = meterValue(level);
  }

  setMuted(muted) {
    const button = $("mute-button");
    button.setAttribute("aria-pressed", String(muted));
    button.textContent = muted ? "Unmute" : "Mute";
  }

  setDevices(devices, chosen) {
    const select = $("microphone");
    const options = devices.map((device, index) => {
      const option = document.createElement("option");
      option.value = device.deviceId;
      option.textContent = device.label || `microphone ${index + 1}`;
      return option;
    });
    if (!options.length) options.push(new Option("default", ""));
    select.replaceChildren(...options);
    if (chosen && devices.some((device) => device.deviceId === chosen)) select.value = chosen;
  }

  microphoneProblem(text) {
    const problem = $("microphone-problem");
    problem.textContent = text || "";
    problem.hidden = !text;
  }

  error(text) {
    this.entry("error", "error").querySelector(".text").textContent = text;
  }
}

// -- the microphone: one stream, its level (meter, "end of speech") and, for the WebSocket, PCM.
// Mute disables the track (silence goes out, the call stays up); switching devices opens the
// new one, feeds it to the same capture worklet, and the WebRTC call swaps its sender's track.

class Microphone {
  constructor(settings) {
    this.settings = settings; // {muted, deviceId, echoCancellation}: the page's choices
    this.stream = null;
    this.context = null;
    this.source = null;
    this.node = null;
    this.lastVoicedAt = null;
    this.utterancePeak = 0;
    this.level = 0;
    this.peakLevel = 0;
    this.openedAt = null;
    this.onPcm = null;
    this.onLevel = null;
  }

  async getStream(deviceId) {
    const echoCancellation = this.settings.echoCancellation;
    const audio = { echoCancellation, noiseSuppression: true, autoGainControl: true, channelCount: 1 };
    if (deviceId) audio.deviceId = { exact: deviceId };
    const stream = await navigator.mediaDevices.getUserMedia({ audio });
    stream.getAudioTracks().forEach((track) => (track.enabled = !this.settings.muted));
    return stream;
  }

  async open() {
    const problem = microphoneProblem(thisPage());
    if (problem) throw new Error(problem);
    this.stream = await this.getStream(this.settings.deviceId);
    this.openedAt = now();
    this.context = new AudioContext();
    await this.context.audioWorklet.addModule(WORKLETS_URL);
    await this.context.resume();
  }

  get track() {
    return this.stream.getAudioTracks()[0];
  }

  get deviceId() {
    return this.track?.getSettings().deviceId ?? null;
  }

  async devices() {
    const all = await navigator.mediaDevices.enumerateDevices();
    return all.filter((device) => device.kind === "audioinput");
  }

  startMeter(sendPcm) {
    this.node = new AudioWorkletNode(this.context, "mic-capture", {
      processorOptions: { sendPcm, outRate: INPUT_RATE },
    });
    this.node.port.onmessage = (event) => this.onBlock(event.data);
    const mute = this.context.createGain();
    mute.gain.value = 0;
    this.node.connect(mute).connect(this.context.destination);
    this.connectSource();
  }

  connectSource() {
    if (this.source) this.source.disconnect();
    this.source = this.context.createMediaStreamSource(this.stream);
    this.source.connect(this.node);
  }

  setMuted(muted) {
    this.settings.muted = muted;
    if (this.stream) this.stream.getAudioTracks().forEach((track) => (track.enabled = !muted));
  }

  // The new device's track (the old one is stopped once the new one flows).
  async switchTo(deviceId) {
    const stream = await this.getStream(deviceId);
    if (!this.stream) {
      stream.getTracks().forEach((track) => track.stop());
      throw new Error("the call has ended");
    }
    const old = this.stream;
    this.stream = stream;
    this.settings.deviceId = deviceId;
    if (this.node) this.connectSource();
    old.getTracks().forEach((track) => track.stop());
    return this.track;
  }

  newUtterance() {
    this.utterancePeak = 0;
  }

  onBlock(block) {
    this.level = block.level;
    this.peakLevel = Math.max(this.peakLevel, block.level);
    if (this.onLevel) this.onLevel(block.level);
    this.utterancePeak = Math.max(this.utterancePeak, block.level);
    if (block.level >= Math.max(VOICE_LEVEL, this.utterancePeak * VOICE_BELOW_PEAK)) {
      this.lastVoicedAt = now();
    }
    if (block.pcm && this.onPcm) this.onPcm(block.pcm);
  }

  close() {
    if (this.stream) this.stream.getTracks().forEach((track) => track.stop());
    if (this.context) this.context.close().catch(() => {});
    if (this.onLevel) this.onLevel(0);
    this.stream = null;
    this.context = null;
  }
}

// -- one call: the conversation's events, whatever carries them ----------------------------

class Call {
  constructor(view, transport, settings) {
    this.view = view;
    this.transport = transport;
    this.microphone = new Microphone(settings);
    this.microphone.onLevel = (level) => view.setLevel(level);
    this.transcribing = false;
    this.turns = [];
    this.responses = new Map();
    this.itemOfResponse = new Map();
    this.userTranscripts = new Map();
    this.speechEnd = null;
    this.speechStoppedAt = null;
    this.outputRate = 24000;
    this.ended = false;
    this.onEnded = null;
  }

  handle(event) {
    const view = this.view;
    switch (event.type) {
      case "session.created":
      case "session.updated": {
        const rate = event.session?.audio?.output?.format?.rate;
        if (rate) this.outputRate = rate;
        this.transcribing = Boolean(event.session?.audio?.input?.transcription);
        if (event.type === "session.created") {
          view.setState("listening");
          // Show the user's words: the service transcribes each turn only when asked.
          if (!this.transcribing) this.send({ type: "session.update", session: { audio: { input: { transcription: {} } } } });
        }
        break;
      }
      case "input_audio_buffer.speech_started":
        this.speechEnd = null;
        this.microphone.newUtterance();
        view.setState("listening");
        this.bargeIn();
        break;
      case "input_audio_buffer.speech_stopped":
        this.speechStoppedAt = now();
        this.speechEnd = this.microphone.lastVoicedAt ?? this.speechStoppedAt;
        view.user(event.item_id);
        view.setState("thinking");
        break;
      case "conversation.item.added":
        if (event.item?.role === "user") {
          view.user(event.item.id);
          const text = (event.item.content || []).map((part) => part.text || "").join("");
          if (text) view.setUserText(event.item.id, text);
        }
        break;
      case "conversation.item.input_audio_transcription.completed":
        this.userTranscripts.set(event.item_id, event.transcript);
        view.setUserText(event.item_id, event.transcript);
        for (const turn of this.turns) if (turn.userItemId === event.item_id) turn.userTranscript = event.transcript;
        break;
      case "response.created": {
        const turn = {
          responseId: event.response.id,
          userItemId: null,
          userTranscript: null,
          replyText: "",
          reasoning: "",
          speechEnd: this.speechEnd,
          speechStoppedAt: this.speechStoppedAt,
          heardAt: null,
          audioStartedAt: null,
          latencyMs: null,
          serverFirstAudioMs: null,
          stages: null,
          stagesOrigin: null,
          cut: false,
          status: null,
          done: false,
          audioDone: false,
        };
        const lastUser = [...view.users.keys()].pop();
        turn.userItemId = lastUser ?? null;
        turn.userTranscript = this.userTranscripts.get(turn.userItemId) ?? null;
        this.speechEnd = null;
        this.turns.push(turn);
        this.responses.set(turn.responseId, turn);
        view.reply(turn.responseId);
        break;
      }
      case "response.output_item.added":
        // The reply's message (what is heard), not a function call of the same response.
        if (event.item?.type === "message") this.itemOfResponse.set(event.response_id, event.item.id);
        break;
      case "response.reasoning.delta":
        view.addReasoning(event.response_id, event.delta);
        this.turn(event.response_id, (turn) => (turn.reasoning += event.delta));
        break;
      case "response.output_audio_transcript.delta":
      case "response.output_text.delta":
        view.addReplyText(event.response_id, event.delta);
        this.turn(event.response_id, (turn) => (turn.replyText += event.delta));
        break;
      case "response.output_audio_transcript.done":
        view.setReplyText(event.response_id, event.transcript);
        this.turn(event.response_id, (turn) => (turn.replyText = event.transcript));
        break;
      case "response.output_text.done":
        view.setReplyText(event.response_id, event.text);
        this.turn(event.response_id, (turn) => (turn.replyText = event.text));
        break;
      case "response.output_audio.delta":
        this.playAudio(event);
        break;
      case "output_audio_buffer.started":
        this.turn(event.response_id, (turn) => (turn.audioStartedAt = now()));
        break;
      case "output_audio_buffer.stopped":
        this.audioEnded(event.response_id);
        break;
      case "output_audio_buffer.cleared":
        this.cutOff(event.response_id);
        this.audioEnded(event.response_id);
        break;
      case "response.done": {
        const response = event.response;
        this.turn(response.id, (turn) => {
          turn.done = true;
          turn.status = response.status;
          const stages = response.x_turn?.timings?.stages_ms || null;
          turn.stages = stages;
          turn.stagesOrigin = response.x_turn?.timings?.origin?.replaceAll("_", " ") ?? null;
          if (response.status === "cancelled" && response.status_details?.reason === "turn_detected") turn.cut = true;
          if (stages && stages.first_audio_sent !== undefined) turn.serverFirstAudioMs = stages.first_audio_sent;
          view.setLatency(response.id, turn);
          if (turn.heardAt === null || turn.audioDone || response.status !== "completed") this.settle(turn);
        });
        break;
      }
      case "error":
        view.error(event.error?.message || "error");
        break;
      default:
        break;
    }
  }

  // The user spoke over this reply and the service cut it.
  cutOff(responseId) {
    this.turn(responseId, (turn) => {
      turn.cut = true;
      this.view.setLatency(responseId, turn);
    });
  }

  setMuted(muted) {
    this.microphone.setMuted(muted);
  }

  async switchMicrophone(deviceId) {
    const track = await this.microphone.switchTo(deviceId);
    await this.useTrack(track);
  }

  // Overridden by the WebRTC call, which sends the track itself.
  async useTrack() {}

  turn(responseId, update) {
    const turn = this.responses.get(responseId);
    if (turn) update(turn);
  }

  // The first reply audio of a response has been heard.
  heard(responseId, at) {
    const turn = responseId ? this.responses.get(responseId) : this.turns.findLast((t) => this.awaits(t));
    if (!turn || turn.heardAt !== null) return;
    turn.heardAt = at;
    if (turn.speechEnd !== null) turn.latencyMs = at - turn.speechEnd;
    this.view.setLatency(turn.responseId, turn);
    this.view.setState("speaking");
  }

  awaits(turn) {
    return turn.heardAt === null && !turn.audioDone && (turn.status === null || turn.status === "completed");
  }

  awaitingAudio() {
    return this.turns.some((turn) => this.awaits(turn));
  }

  audioEnded(responseId) {
    this.turn(responseId, (turn) => {
      turn.audioDone = true;
      if (turn.done) this.settle(turn);
    });
  }

  settle(turn) {
    if (this.turns[this.turns.length - 1] === turn && document.body.dataset.state !== "thinking") {
      this.view.setState("listening");
    }
  }

  send(event) {
    this.transport.send({ event_id: eventId(), ...event });
  }

  // Overridden by the WebSocket call, which plays the audio itself.
  playAudio() {}

  bargeIn() {}

  end(reason) {
    if (this.ended) return;
    this.ended = true;
    if (reason) this.view.notice(reason);
    this.microphone.close();
    this.view.setState("idle");
    if (this.onEnded) this.onEnded(this);
  }

  summary() {
    return this.turns.map((turn) => ({
      responseId: turn.responseId,
      userTranscript: turn.userTranscript,
      replyText: turn.replyText,
      reasoning: turn.reasoning,
      latencyMs: turn.latencyMs,
      serverFirstAudioMs: turn.serverFirstAudioMs,
      status: turn.status,
      cut: turn.cut,
      stages: turn.stages,
      // page times (performance.now(), ms) behind the latency
      speechEndAt: turn.speechEnd,
      speechStoppedAt: turn.speechStoppedAt,
      audioStartedAt: turn.audioStartedAt,
      heardAt: turn.heardAt,
    }));
  }
}

// -- WebRTC --------------------------------------------------------------------------------

class WebRtcCall extends Call {
  constructor(view, settings) {
    super(view, null, settings);
    this.transport = this;
    this.kind = "webrtc";
    this.pc = null;
    this.channel = null;
    this.callUrl = null;
    this.poller = null;
    this.replyPeakLevel = 0;
    this.connected = false;
  }

  async start() {
    const iceServers = await fetch(ICE_SERVERS_URL, { headers: authHeaders() })
      .then((reply) => (reply.ok ? reply.json() : { ice_servers: [] }))
      .then((body) => body.ice_servers || []);
    await this.microphone.open();
    this.microphone.startMeter(false);
    const pc = (this.pc = new RTCPeerConnection({ iceServers }));
    this.sender = pc.addTrack(this.microphone.track, this.microphone.stream);
    pc.ontrack = (event) => {
      const audio = $("reply-audio");
      audio.srcObject = event.streams[0] || new MediaStream([event.track]);
      audio.play().catch(() => {});
    };
    const channel = (this.channel = pc.createDataChannel(EVENTS_CHANNEL));
    channel.onmessage = (message) => this.handle(JSON.parse(message.data));
    channel.onclose = () => this.end(this.ended ? null : "the call ended (data channel closed)");
    const opened = new Promise((resolve) => channel.addEventListener("open", resolve, { once: true }));
    const connected = new Promise((resolve, reject) => {
      pc.onconnectionstatechange = () => {
        if (pc.connectionState === "connected") {
          this.connected = true;
          resolve();
        } else if (pc.connectionState === "failed") {
          if (this.connected) this.end("the WebRTC connection failed");
          reject(new Error("ICE/DTLS connection failed"));
        }
      };
    });
    await pc.setLocalDescription(await pc.createOffer());
    await this.iceGathered();
    const reply = await fetch(CALLS_URL, {
      method: "POST",
      body: pc.localDescription.sdp,
      headers: { "Content-Type": "application/sdp", ...authHeaders() },
    });
    if (reply.status !== 201) {
      let message = `${reply.status}`;
      try {
        message += ": " + (await reply.json()).error.message;
      } catch {
        /* not JSON */
      }
      throw new Error(`the service refused the call (${message})`);
    }
    this.callUrl = reply.headers.get("Location");
    await pc.setRemoteDescription({ type: "answer", sdp: await reply.text() });
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`not connected within ${CONNECT_TIMEOUT_MS / 1000} s`)), CONNECT_TIMEOUT_MS);
    });
    try {
      await Promise.race([Promise.all([connected, opened]), timeout]);
    } finally {
      clearTimeout(timer);
    }
    this.poller = setInterval(() => this.pollLevel(), LEVEL_POLL_MS);
  }

  async useTrack(track) {
    if (this.sender) await this.sender.replaceTrack(track);
  }

  iceGathered() {
    const pc = this.pc;
    if (pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        if (pc.iceGatheringState === "complete") resolve();
      };
      pc.addEventListener("icegatheringstatechange", done);
      setTimeout(resolve, ICE_GATHER_TIMEOUT_MS);
    });
  }

  pollLevel() {
    const receiver = this.pc?.getReceivers().find((r) => r.track && r.track.kind === "audio");
    if (!receiver || !receiver.getSynchronizationSources) return;
    const source = receiver.getSynchronizationSources()[0];
    const level = source?.audioLevel ?? 0;
    if (level > this.replyPeakLevel) this.replyPeakLevel = level;
    if (level > HEARD_LEVEL && this.awaitingAudio()) this.heard(null, now());
  }

  send(event) {
    if (this.channel && this.channel.readyState === "open") this.channel.send(JSON.stringify(event));
  }

  async stats() {
    const inbound = {};
    if (this.pc) {
      (await this.pc.getStats()).forEach((report) => {
        if (report.type === "inbound-rtp" && report.kind === "audio") {
          Object.assign(inbound, {
            packetsReceived: report.packetsReceived,
            totalSamplesReceived: report.totalSamplesReceived,
            audioLevel: report.audioLevel,
            totalAudioEnergy: report.totalAudioEnergy,
            jitter: report.jitter,
            jitterBufferDelay: report.jitterBufferDelay,
            jitterBufferTargetDelay: report.jitterBufferTargetDelay,
            jitterBufferEmittedCount: report.jitterBufferEmittedCount,
          });
        }
      });
    }
    return {
      transport: this.kind,
      connectionState: this.pc?.connectionState,
      inbound,
      replyPeakLevel: this.replyPeakLevel,
      sentTrackId: this.sender?.track?.id ?? null,
    };
  }

  end(reason) {
    if (this.ended) return;
    clearInterval(this.poller);
    if (this.callUrl) {
      fetch(this.callUrl + "/hangup", { method: "POST", keepalive: true, headers: authHeaders() }).catch(() => {});
    }
    if (this.channel) this.channel.onclose = null;
    if (this.pc) this.pc.close();
    super.end(reason);
  }

  hangUpOnUnload() {
    if (this.callUrl) {
      // A beacon cannot carry the Authorization header; a keepalive fetch outlives the page.
      fetch(this.callUrl + "/hangup", { method: "POST", keepalive: true, headers: authHeaders() }).catch(() => {});
    }
    this.end(null);
  }
}

// -- WebSocket fallback --------------------------------------------------------------------

class WebSocketCall extends Call {
  constructor(view, settings) {
    super(view, null, settings);
    this.transport = this;
    this.kind = "websocket";
    this.socket = null;
    this.player = null;
    this.pendingPcm = [];
    this.replySamples = 0;
    this.replyPeakLevel = 0;
    this.playedPeak = 0;
    this.playing = null;
  }

  async start() {
    await this.microphone.open();
    const context = this.microphone.context;
    this.player = new AudioWorkletNode(context, "reply-player", { outputChannelCount: [1] });
    this.player.connect(context.destination);
    this.player.port.onmessage = (event) => this.onPlayer(event.data);
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const protocols = ["realtime"];
    if (credential()) protocols.push(`openai-insecure-api-key.${credential()}`);
    const socket = (this.socket = new WebSocket(`${scheme}://${location.host}/v1/realtime`, protocols));
    await new Promise((resolve, reject) => {
      socket.onopen = resolve;
      socket.onerror = () => reject(new Error("the WebSocket did not open"));
    });
    socket.onmessage = (message) => this.handle(JSON.parse(message.data));
    socket.onclose = () => this.end(this.ended ? null : "the call ended (WebSocket closed)");
    this.microphone.onPcm = (pcm) => this.sendPcm(pcm);
    this.microphone.startMeter(true);
  }

  sendPcm(pcm) {
    this.pendingPcm.push(pcm);
    if (this.pendingPcm.length < SEND_BLOCKS) return;
    const total = this.pendingPcm.reduce((sum, part) => sum + part.length, 0);
    const joined = new Int16Array(total);
    let offset = 0;
    for (const part of this.pendingPcm) {
      joined.set(part, offset);
      offset += part.length;
    }
    this.pendingPcm = [];
    this.send({ type: "input_audio_buffer.append", audio: base64FromBytes(new Uint8Array(joined.buffer)) });
  }

  send(event) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(event));
  }

  playAudio(event) {
    const samples = floatsFromPcm16Base64(event.delta);
    this.replySamples += samples.length;
    for (let i = 0; i < samples.length; i++) {
      const magnitude = Math.abs(samples[i]);
      if (magnitude > this.replyPeakLevel) this.replyPeakLevel = magnitude;
    }
    this.player.port.postMessage({ type: "push", id: event.response_id, rate: this.outputRate, samples }, [samples.buffer]);
  }

  onPlayer(message) {
    if (message.type === "started") {
      this.playing = message.id;
      this.heard(message.id, now());
    } else if (message.type === "progress") {
      this.playedPeak = Math.max(this.playedPeak, message.peak);
    } else if (message.type === "idle") {
      this.playing = null;
      this.playedPeak = Math.max(this.playedPeak, message.peak || 0);
      this.turn(message.id, (turn) => {
        if (turn.done) this.audioEnded(message.id);
      });
    } else if (message.type === "cleared") {
      this.playing = null;
      this.cutOff(message.id);
      const itemId = this.itemOfResponse.get(message.id);
      if (itemId) {
        this.send({ type: "conversation.item.truncate", item_id: itemId, content_index: 0, audio_end_ms: Math.round(message.playedMs) });
      }
      this.audioEnded(message.id);
    }
  }

  handle(event) {
    super.handle(event);
    // Audio that finished playing before its response.done arrived.
    if (event.type === "response.done" && this.playing !== event.response.id) this.audioEnded(event.response.id);
  }

  bargeIn() {
    if (this.playing) this.player.port.postMessage({ type: "clear" });
  }

  async stats() {
    return {
      transport: this.kind,
      connectionState: this.socket ? ["connecting", "open", "closing", "closed"][this.socket.readyState] : null,
      replySamples: this.replySamples,
      replyPeakLevel: this.replyPeakLevel,
      playedPeakLevel: this.playedPeak,
    };
  }

  end(reason) {
    if (this.ended) return;
    if (this.socket) {
      this.socket.onclose = null;
      this.socket.close();
    }
    super.end(reason);
  }

  hangUpOnUnload() {
    this.end(null);
  }
}

// -- the button ----------------------------------------------------------------------------

const view = new CallView();
const microphoneSettings = { muted: false, deviceId: null, echoCancellation: true };
let call = null;
let lastCall = null;

function chosenTransport() {
  const fromQuery = new URLSearchParams(location.search).get("transport");
  const select = $("transport");
  if (fromQuery && [...select.options].some((option) => option.value === fromQuery)) select.value = fromQuery;
  return select.value;
}

async function startCall() {
  const choice = chosenTransport();
  microphoneSettings.echoCancellation = $("echo-cancellation").checked;
  view.notice("");
  view.setState("connecting");
  if (choice !== "websocket") {
    const attempt = new WebRtcCall(view, microphoneSettings);
    try {
      await attempt.start();
      return attempt;
    } catch (error) {
      attempt.end(null);
      if (choice === "webrtc") throw error;
      view.setState("connecting");
      view.notice(`WebRTC failed (${error.message}); using the WebSocket fallback.`);
    }
  }
  const fallback = new WebSocketCall(view, microphoneSettings);
  try {
    await fallback.start();
  } catch (error) {
    fallback.end(null);
    throw error;
  }
  return fallback;
}

async function onButton() {
  const button = $("call-button");
  button.disabled = true;
  try {
    if (call) {
      call.end(null);
      call = null;
    } else {
      call = lastCall = await startCall();
      listDevices(); // labels are readable once the microphone is allowed
      view.setVia(`via ${call.kind === "webrtc" ? "WebRTC" : "WebSocket"}`);
      call.onEnded = (ended) => {
        if (call === ended) call = null;
        $("call-button").textContent = "Start call";
        $("echo-cancellation").disabled = false;
        view.setVia("");
      };
    }
  } catch (error) {
    view.setState("idle");
    view.error(`could not start the call: ${error.message}`);
    call = null;
  } finally {
    button.textContent = call ? "End call" : "Start call";
    button.disabled = false;
    $("echo-cancellation").disabled = Boolean(call); // applies from the next call
  }
}

function onMute() {
  const muted = !microphoneSettings.muted;
  if (call) call.setMuted(muted);
  else microphoneSettings.muted = muted;
  view.setMuted(muted);
}

async function listDevices() {
  if (!thisPage().hasGetUserMedia) return;
  try {
    const devices = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === "audioinput");
    view.setDevices(devices, call ? call.microphone.deviceId : microphoneSettings.deviceId);
  } catch (error) {
    view.notice(`could not list the microphones: ${error.message}`);
  }
}

async function onDevice() {
  const deviceId = $("microphone").value || null;
  if (!call) {
    microphoneSettings.deviceId = deviceId;
    return;
  }
  try {
    await call.switchMicrophone(deviceId);
    view.notice("");
  } catch (error) {
    view.notice(`could not switch the microphone: ${error.message}`);
  }
}

window.addEventListener("pagehide", () => {
  if (call) call.hangUpOnUnload();
});

$("call-button").addEventListener("click", onButton);
$("mute-button").addEventListener("click", onMute);
$("microphone").addEventListener("change", onDevice);
takeSecretFromFragment();
chosenTransport();
const problem = microphoneProblem(thisPage());
view.microphoneProblem(problem);
if (!problem) {
  $("call-button").disabled = false;
  navigator.mediaDevices.addEventListener("devicechange", listDevices);
  listDevices();
}

// For tests and the curious: the live call's state, turns and audio statistics.
window.stepCall = {
  get state() {
    return document.body.dataset.state;
  },
  get transport() {
    return call ? call.kind : null;
  },
  get turns() {
    return lastCall ? lastCall.summary() : [];
  },
  async stats() {
    return lastCall ? lastCall.stats() : null;
  },
  get transcribing() {
    return lastCall ? lastCall.transcribing : false;
  },
  // The microphone of the live call: its level (RMS, 0..1), the loudest level so far, whether
  // it is muted, the device, and seconds since it opened.
  get microphone() {
    const mic = call ? call.microphone : null;
    return {
      level: mic ? mic.level : 0,
      peakLevel: mic ? mic.peakLevel : 0,
      muted: microphoneSettings.muted,
      deviceId: mic && mic.stream ? mic.deviceId : null,
      trackId: mic && mic.stream ? mic.track.id : null,
      seconds: mic && mic.openedAt !== null ? (now() - mic.openedAt) / 1000 : null,
    };
  },
  microphoneProblem,
};
