// A payload's JSON as the broker's ACL parsed it, for the manager in the same process to take instead of parsing the
// same bytes again. aedes hands a payload's very Buffer to an in-process subscriber (direct.ts), usually within the
// same call, so the last few are kept by identity: a payload not found here is simply parsed again. (A WeakMap
// entry per message cost the broker a fifth of its QoS-0 throughput, scripts/bench/broker.ts.) Whoever reads an
// entry only reads it: the manager's zod parse builds its own objects.

const SLOTS = 8;
const payloads: (Buffer | undefined)[] = new Array(SLOTS);
const values: unknown[] = new Array(SLOTS);
let next = 0;

export function rememberParsed(payload: Buffer, value: unknown): void {
  payloads[next] = payload;
  values[next] = value;
  next = (next + 1) % SLOTS;
}

/** The JSON the broker parsed from this very payload, if it is still kept. */
export function parsedOf(payload: Buffer): unknown {
  for (let i = 0; i < SLOTS; i++) if (payloads[i] === payload) return values[i];
  return undefined;
}
