// One spoken turn through OpenAI's JavaScript Agents SDK (@openai/agents-realtime): a
// RealtimeSession over its WebSocket transport with the SDK's default session config.
//   node spoken_turn.mjs WS_URL PCM16_24KHZ_FILE API_KEY
// Streams the file at real-time pace (then silence until the reply is done) and prints one
// JSON line: the error events received, the reply's audio bytes and the event types seen.
import { RealtimeAgent, RealtimeSession } from '@openai/agents-realtime';
import { readFileSync } from 'node:fs';

const [url, pcmPath, apiKey] = process.argv.slice(2);
const FRAME_BYTES = 960; // 20 ms of 24 kHz PCM16
const TIMEOUT_MS = 60000;

const agent = new RealtimeAgent({ name: 'Assistant', instructions: 'Answer briefly.' });
const session = new RealtimeSession(agent, { transport: 'websocket', model: 'step-audio-r1' });
const errors = [];
const seen = [];
let audioBytes = 0;
session.on('error', (event) => errors.push(String(event?.error?.message ?? event?.error ?? event)));
session.on('transport_event', (event) => {
  seen.push(event.type);
  if (event.type === 'error') errors.push(JSON.stringify(event.error ?? event));
});
session.on('audio', (event) => {
  audioBytes += event.data.byteLength;
});

await session.connect({ apiKey, url });
const speech = readFileSync(pcmPath);
const frames = Buffer.concat([speech, Buffer.alloc(FRAME_BYTES * 50)]); // then 1 s of silence
const deadline = Date.now() + TIMEOUT_MS;
let offset = 0;
while (!seen.includes('response.done') && Date.now() < deadline) {
  const frame = offset < frames.length ? frames.subarray(offset, offset + FRAME_BYTES) : Buffer.alloc(FRAME_BYTES);
  offset += FRAME_BYTES;
  session.sendAudio(frame.buffer.slice(frame.byteOffset, frame.byteOffset + frame.byteLength));
  await new Promise((resolve) => setTimeout(resolve, 20));
}
await new Promise((resolve) => setTimeout(resolve, 500)); // late events
session.close();
console.log(JSON.stringify({ errors, audioBytes, types: [...new Set(seen)] }));
process.exit(seen.includes('response.done') ? 0 : 1);
