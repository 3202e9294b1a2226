/**
 * A small protobuf wire-format writer over one growable Buffer: just what OTLP spans and
 * exemplars (src/otel/) and the Prometheus remote-write request (src/export/remote-write.ts)
 * need. Messages are encoded straight from request records into bytes, so no object graph
 * lives on the JS heap while it waits for export.
 */

import { writeLowerHex } from './hex.ts';

export const WireType = { VARINT: 0, FIXED64: 1, LEN: 2, FIXED32: 5 } as const;

export class ProtobufWriter {
  buf: Buffer<ArrayBuffer>;
  pos = 0;
  /**
   * `buf` as a DataView, for fixed64: Buffer.writeBigUInt64LE is JavaScript that splits the
   * BigInt with BigInt operations (about 140 ns a call), DataView.setBigUint64 a builtin (5 ns).
   */
  private view64: DataView;

  constructor(initialBytes = 4096) {
    this.buf = Buffer.allocUnsafe(initialBytes);
    this.view64 = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.length);
  }

  reset(): void {
    this.pos = 0;
  }

  /** The bytes written so far (a view, valid until the next write or reset). */
  view(): Buffer<ArrayBuffer> {
    return this.buf.subarray(0, this.pos);
  }

  /** Room for `n` more bytes at `pos` (for callers that write `buf` directly). */
  reserve(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(bigger, 0, 0, this.pos);
    this.buf = bigger;
    this.view64 = new DataView(bigger.buffer, bigger.byteOffset, bigger.length);
  }

  tag(field: number, wireType: number): void {
    this.varint(field * 8 + wireType);
  }

  /** Non-negative integers up to 2^53. */
  varint(v: number): void {
    this.reserve(10);
    if (v < 0x80) {
      // Tags, lengths and most values: one byte, no arithmetic.
      this.buf[this.pos++] = v;
      return;
    }
    while (v > 0x7f) {
      this.buf[this.pos++] = (v % 128) | 0x80;
      v = Math.floor(v / 128);
    }
    this.buf[this.pos++] = v;
  }

  /**
   * A proto `int64` (a varint): integers within ±2^53; a negative value takes ten bytes, its
   * 64-bit two's complement.
   */
  int64(v: number): void {
    if (v >= 0) {
      this.varint(v);
      return;
    }
    this.reserve(10);
    let u = BigInt.asUintN(64, BigInt(v));
    while (u >= 0x80n) {
      this.buf[this.pos++] = Number(u & 0x7fn) | 0x80;
      u >>= 7n;
    }
    this.buf[this.pos++] = Number(u);
  }

  fixed32(v: number): void {
    this.reserve(4);
    this.buf.writeUInt32LE(v >>> 0, this.pos);
    this.pos += 4;
  }

  fixed64(v: bigint): void {
    this.reserve(8);
    this.view64.setBigUint64(this.pos, v, true);
    this.pos += 8;
  }

  double(v: number): void {
    this.reserve(8);
    this.buf.writeDoubleLE(v, this.pos);
    this.pos += 8;
  }

  /** A length-delimited UTF-8 string (without its tag). */
  string(s: string): void {
    const n = utf8Length(s);
    this.varint(n);
    this.utf8(s, n);
  }

  /** The `n` UTF-8 bytes of `s` (n from utf8Length), without a length. */
  utf8(s: string, n: number): void {
    this.reserve(n);
    if (n === s.length && n < 128) {
      // Short ASCII (keys, addresses, paths): a loop beats a call into C++.
      const buf = this.buf;
      const at = this.pos;
      for (let i = 0; i < n; i++) buf[at + i] = s.charCodeAt(i);
      this.pos += n;
      return;
    }
    this.pos += this.buf.write(s, this.pos, n, 'utf8');
  }

  /** A length-delimited byte string given as hex (trace and span ids), without its tag. */
  hexBytes(hex: string): void {
    const n = hex.length >>> 1;
    this.varint(n);
    this.reserve(n);
    // Not lowercase hex: Buffer's conversion, which stops at the first bad digit.
    if (writeLowerHex(hex, n * 2, this.buf, this.pos)) this.pos += n;
    else this.pos += this.buf.write(hex, this.pos, n, 'hex');
  }

  /** Raw bytes, copied as they are. */
  raw(bytes: Uint8Array): void {
    const n = bytes.length;
    this.reserve(n);
    if (n < 64) {
      // Encoded keys and attribute blocks are short: a loop beats TypedArray.prototype.set's
      // builtin call.
      const buf = this.buf;
      const at = this.pos;
      for (let i = 0; i < n; i++) buf[at + i] = bytes[i]!;
    } else {
      this.buf.set(bytes, this.pos);
    }
    this.pos += n;
  }
}

/** UTF-8 length of `s`; short ASCII strings are measured without a call into C++. */
export function utf8Length(s: string): number {
  if (s.length < 128) {
    let i = 0;
    while (i < s.length && s.charCodeAt(i) < 0x80) i++;
    if (i === s.length) return i;
  }
  return Buffer.byteLength(s, 'utf8');
}

export function varintSize(v: number): number {
  let n = 1;
  while (v > 0x7f) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

/** Bytes int64(v) writes. */
export function int64Size(v: number): number {
  return v < 0 ? 10 : varintSize(v);
}
