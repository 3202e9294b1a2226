/**
 * Text taken from captured bytes or from other processes (paths, header values, process
 * names) goes into records, spans, metric labels and terminals. Valid UTF-8 is kept as text;
 * invalid bytes and control characters (C0, DEL, C1) become %XX escapes of their bytes, so no
 * stored or printed field can carry a terminal escape, a line break or a mis-decoded byte
 * (issue 13, finding 7). `/café` stays `/café`; `/a\x1b[2J` becomes `/a%1B[2J`.
 */

const HEX = '0123456789ABCDEF';

function percent(byte: number): string {
  return `%${HEX[byte >> 4]}${HEX[byte & 15]}`;
}

/** A code point to escape: C0 controls, DEL and the C1 controls. */
function isControl(cp: number): boolean {
  return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f);
}

/** Length of the valid UTF-8 sequence at buf[i] (before `end`), or 0 when it is not one. */
function utf8SequenceLength(buf: Uint8Array, i: number, end: number): number {
  const b0 = buf[i]!;
  if (b0 < 0x80) return 1;
  const cont = (k: number, lo = 0x80, hi = 0xbf) => i + k < end && buf[i + k]! >= lo && buf[i + k]! <= hi;
  // The ranges exclude overlong forms, surrogates and code points above U+10FFFF (RFC 3629).
  if (b0 >= 0xc2 && b0 <= 0xdf) return cont(1) ? 2 : 0;
  if (b0 === 0xe0) return cont(1, 0xa0) && cont(2) ? 3 : 0;
  if ((b0 >= 0xe1 && b0 <= 0xec) || b0 === 0xee || b0 === 0xef) return cont(1) && cont(2) ? 3 : 0;
  if (b0 === 0xed) return cont(1, 0x80, 0x9f) && cont(2) ? 3 : 0;
  if (b0 === 0xf0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (b0 >= 0xf1 && b0 <= 0xf3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (b0 === 0xf4) return cont(1, 0x80, 0x8f) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

/** buf[start, end) as safe text (see the file comment). */
export function decodeSafeText(buf: Buffer, start: number, end: number): string {
  // Almost every path and header value is printable ASCII: one pass, one latin1 string.
  let i = start;
  while (i < end && buf[i]! >= 0x20 && buf[i]! < 0x7f) i++;
  if (i === end) return buf.toString('latin1', start, end);
  let out = buf.toString('latin1', start, i);
  while (i < end) {
    const n = utf8SequenceLength(buf, i, end);
    if (n === 0) {
      out += percent(buf[i]!);
      i++;
      continue;
    }
    const text = buf.toString('utf8', i, i + n);
    if (isControl(text.codePointAt(0)!)) for (let k = i; k < i + n; k++) out += percent(buf[k]!);
    else out += text;
    i += n;
  }
  return out;
}

// eslint-disable-next-line no-control-regex
const CONTROLS = /[\u0000-\u001f\u007f-\u009f]/;

/** A string with its control characters escaped as %XX of their UTF-8 bytes. */
export function escapeControls(text: string): string {
  if (!CONTROLS.test(text)) return text;
  const bytes = Buffer.from(text, 'utf8');
  return decodeSafeText(bytes, 0, bytes.length);
}

/** Every string inside `value` (arrays and plain objects, deeply) with controls escaped. */
export function escapeControlsDeep<T>(value: T): T {
  if (typeof value === 'string') return escapeControls(value) as T;
  if (Array.isArray(value)) return value.map((v: unknown) => escapeControlsDeep(v)) as T;
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[escapeControls(k)] = escapeControlsDeep(v);
    return out as T;
  }
  return value;
}
