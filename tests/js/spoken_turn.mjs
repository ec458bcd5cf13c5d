// One spoken turn through OpenAI's JavaScript Agents SDK (@openai/agents-realtime): a
// RealtimeSession over its WebSocket transport with the SDK's default session config.
//   node spoken_turn.mjs WS_URL PCM16_24KHZ_FILE API_KEY [--with-tool]
// Streams the file at real-time pace (then silence until the reply is done) and prints one
// JSON line: the error events received, the reply's audio bytes, the event types seen and the
// tool calls the SDK ran. With --with-tool the agent registers a function tool; the SDK runs
// it when the model calls it and sends its output back, and the turn ends with the answer
// after it.
import { RealtimeAgent, RealtimeSession, tool } from '@openai/agents-realtime';
import { readFileSync } from 'node:fs';
import { z } from 'zod';

const [url, pcmPath, apiKey, flag] = process.argv.slice(2);
const FRAME_BYTES = 960; // 20 ms of 24 kHz PCM16
const TIMEOUT_MS = 60000;

const toolCalls = [];
const getWeather = tool({
  name: 'get_weather',
  description: 'The weather in a city.',
  parameters: z.object({ city: z.string() }),
  execute: async ({ city }) => {
    toolCalls.push(city);
    return `It is sunny in ${city}.`;
  },
});
const tools = flag === '--with-tool' ? [getWeather] : [];
const agent = new RealtimeAgent({ name: 'Assistant', instructions: 'Answer briefly.', tools });
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
const repliesWanted = tools.length ? 2 : 1; // with a tool: the call, then the answer
const done = () => seen.filter((type) => type === 'response.done').length >= repliesWanted;
let offset = 0;
while (!done() && Date.now() < deadline) {
  const frame = offset < frames.length ? frames.subarray(offset, offset + FRAME_BYTES) : Buffer.alloc(FRAME_BYTES);
  offset += FRAME_BYTES;
  session.sendAudio(frame.buffer.slice(frame.byteOffset, frame.byteOffset + frame.byteLength));
  await new Promise((resolve) => setTimeout(resolve, 20));
}
await new Promise((resolve) => setTimeout(resolve, 500)); // late events
session.close();
console.log(JSON.stringify({ errors, audioBytes, toolCalls, types: [...new Set(seen)] }));
process.exit(done() ? 0 : 1);
