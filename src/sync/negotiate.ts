// Which push body format this KB takes: asked once per run, before the first batch, so no
// batch is ever sent in a format the KB cannot read.
//
// GET /v1/protocol (format/protocol.ts ProtocolInfo). A KB that predates it answers 404: an old
// KB, JSON pushes. A KB that lists "frames1" gets binary sample frames. `--framing json` skips
// the question (and is what an old edge does: it never asks, and the KB keeps serving JSON).
import { type ProtocolInfo } from '../format/protocol.js';
import { FRAMES_NAME } from '../format/sample-frames.js';
import type { KbClient } from './http.js';
import type { Framing } from './outbox-reader.js';

export type FramingMode = 'auto' | 'json';
export const FRAMING_MODES: readonly FramingMode[] = ['auto', 'json'];

export async function negotiateFraming(client: KbClient, mode: FramingMode): Promise<Framing> {
  if (mode === 'json') return 'json';
  // 404: no such endpoint (old KB); 405 likewise from a proxy or an older router
  const res = await client.request({ method: 'GET', path: '/v1/protocol', accept: (s) => (s >= 200 && s < 300) || s === 404 || s === 405 });
  if (res.status === 404 || res.status === 405) return 'json';
  try {
    const info = JSON.parse(res.body.toString('utf8')) as ProtocolInfo;
    return Array.isArray(info.push_framings) && info.push_framings.includes(FRAMES_NAME) ? 'frames' : 'json';
  } catch {
    return 'json'; // an answer we cannot read announces nothing: the format every KB takes
  }
}
