// AudioWorklet processors of the call page: the microphone meter/capture and the reply
// player used by the WebSocket fallback. Loaded with audioWorklet.addModule().

// Streaming downsampler: each output sample is the mean of the input samples it spans
// (a box filter, enough against aliasing for speech going to a VAD and a speech model).
class Downsampler {
  constructor(inRate, outRate) {
    this.step = inRate / outRate;
    this.pos = 0;
    this.carry = new Float32Array(0);
  }

  process(input) {
    const data = new Float32Array(this.carry.length + input.length);
    data.set(this.carry);
    data.set(input, this.carry.length);
    const out = [];
    while (this.pos + this.step <= data.length) {
      const first = Math.floor(this.pos);
      const last = Math.max(first + 1, Math.floor(this.pos + this.step));
      let sum = 0;
      for (let i = first; i < last; i++) sum += data[i];
      out.push(sum / (last - first));
      this.pos += this.step;
    }
    const consumed = Math.min(Math.floor(this.pos), data.length);
    this.carry = data.slice(consumed);
    this.pos -= consumed;
    return Float32Array.from(out);
  }
}

// Streaming linear-interpolation resampler (for reply audio going up to the device rate).
class Upsampler {
  constructor(inRate, outRate) {
    this.step = inRate / outRate;
    this.pos = 0;
    this.last = 0;
  }

  process(input) {
    const data = new Float32Array(input.length + 1);
    data[0] = this.last;
    data.set(input, 1);
    const out = [];
    while (this.pos < data.length - 1) {
      const i = Math.floor(this.pos);
      const frac = this.pos - i;
      out.push(data[i] * (1 - frac) + data[i + 1] * frac);
      this.pos += this.step;
    }
    this.pos -= data.length - 1;
    this.last = data[data.length - 1];
    return Float32Array.from(out);
  }
}

// The microphone: every 20 ms posts {level (RMS, 0..1), at (ms, audio clock)} and, when
// capturing for the WebSocket fallback, the 20 ms as PCM16 at `outRate`.
class MicCapture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const settings = options.processorOptions || {};
    this.sendPcm = Boolean(settings.sendPcm);
    this.outRate = settings.outRate || 24000;
    this.downsampler = new Downsampler(sampleRate, this.outRate);
    this.blockFrames = Math.round(sampleRate * 0.02);
    this.block = new Float32Array(this.blockFrames);
    this.filled = 0;
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true;
    const mono = channels[0];
    let offset = 0;
    while (offset < mono.length) {
      const take = Math.min(this.blockFrames - this.filled, mono.length - offset);
      this.block.set(mono.subarray(offset, offset + take), this.filled);
      this.filled += take;
      offset += take;
      if (this.filled === this.blockFrames) {
        this.flushBlock();
        this.filled = 0;
      }
    }
    return true;
  }

  flushBlock() {
    let energy = 0;
    for (let i = 0; i < this.block.length; i++) energy += this.block[i] * this.block[i];
    const message = { type: "level", level: Math.sqrt(energy / this.block.length), at: currentTime * 1000 };
    if (this.sendPcm) {
      const resampled = this.downsampler.process(this.block);
      const pcm = new Int16Array(resampled.length);
      for (let i = 0; i < resampled.length; i++) {
        pcm[i] = Math.max(-32768, Math.min(32767, Math.round(resampled[i] * 32767)));
      }
      message.pcm = pcm;
      this.port.postMessage(message, [pcm.buffer]);
    } else {
      this.port.postMessage(message);
    }
  }
}

// Reply audio of the WebSocket fallback. Messages in: {type: "push", id, rate, samples
// (Float32Array)}, {type: "clear"}. Messages out: {type: "started", id} when a response's
// first samples play, {type: "progress", id, playedMs, peak} every ~100 ms while playing,
// {type: "idle", id, playedMs} when the queue runs dry, {type: "cleared", id, playedMs}.
class ReplyPlayer extends AudioWorkletProcessor {
  constructor() {
    super();
    this.queue = [];
    this.upsamplers = new Map();
    this.current = null;
    this.played = new Map();
    this.peak = 0;
    this.sinceProgress = 0;
    this.port.onmessage = (event) => this.onMessage(event.data);
  }

  onMessage(message) {
    if (message.type === "push") {
      let upsampler = this.upsamplers.get(message.id);
      if (!upsampler) {
        upsampler = new Upsampler(message.rate, sampleRate);
        this.upsamplers.set(message.id, upsampler);
      }
      this.queue.push({ id: message.id, data: upsampler.process(message.samples), offset: 0 });
    } else if (message.type === "clear") {
      const id = this.current ? this.current : this.queue.length ? this.queue[0].id : null;
      this.queue = [];
      this.current = null;
      if (id) this.port.postMessage({ type: "cleared", id, playedMs: this.playedMs(id) });
    }
  }

  playedMs(id) {
    return (1000 * (this.played.get(id) || 0)) / sampleRate;
  }

  process(inputs, outputs) {
    const out = outputs[0][0];
    let written = 0;
    while (written < out.length && this.queue.length) {
      const head = this.queue[0];
      if (this.current !== head.id) {
        this.current = head.id;
        this.port.postMessage({ type: "started", id: head.id });
      }
      const take = Math.min(out.length - written, head.data.length - head.offset);
      for (let i = 0; i < take; i++) {
        const sample = head.data[head.offset + i];
        out[written + i] = sample;
        const magnitude = Math.abs(sample);
        if (magnitude > this.peak) this.peak = magnitude;
      }
      written += take;
      head.offset += take;
      this.played.set(head.id, (this.played.get(head.id) || 0) + take);
      if (head.offset >= head.data.length) this.queue.shift();
    }
    for (let i = written; i < out.length; i++) out[i] = 0;
    if (this.current) {
      this.sinceProgress += out.length;
      if (this.sinceProgress >= sampleRate / 10) {
        this.sinceProgress = 0;
        const id = this.current;
        this.port.postMessage({ type: "progress", id, playedMs: this.playedMs(id), peak: this.peak });
      }
      if (!this.queue.length) {
        const id = this.current;
        this.current = null;
        this.port.postMessage({ type: "idle", id, playedMs: this.playedMs(id), peak: this.peak });
      }
    }
    return true;
  }
}

registerProcessor("mic-capture", MicCapture);
registerProcessor("reply-player", ReplyPlayer);
