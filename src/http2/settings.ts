/**
 * SETTINGS parameters that change how the other direction must be read (RFC 9113 §6.5.2):
 * the table size the sender's HPACK decoder allows, and the largest frame it accepts; and how
 * many streams the sender lets its peer open at once.
 */

export const SettingId = {
  HEADER_TABLE_SIZE: 0x1,
  MAX_CONCURRENT_STREAMS: 0x3,
  MAX_FRAME_SIZE: 0x5,
} as const;

export interface Setting {
  id: number;
  value: number;
}

/** The parameters of a SETTINGS payload (6 bytes each; a trailing partial one is ignored). */
export function parseSettings(payload: Uint8Array): Setting[] {
  const out: Setting[] = [];
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  for (let at = 0; at + 6 <= payload.length; at += 6) out.push({ id: view.getUint16(at), value: view.getUint32(at + 2) });
  return out;
}

/** The HTTP2-Settings header of an h2c upgrade request: a base64url SETTINGS payload (RFC 7540 §3.2.1). */
export function parseHttp2SettingsHeader(value: string): Setting[] | null {
  const trimmed = value.trim();
  if (!/^[A-Za-z0-9_-]*=*$/.test(trimmed)) return null;
  return parseSettings(Buffer.from(trimmed, 'base64url'));
}
