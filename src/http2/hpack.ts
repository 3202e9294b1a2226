/**
 * HPACK decoder (RFC 7541) for one direction of one connection: it holds the dynamic table
 * the peer's encoder built, so every header block of that direction must pass through it,
 * in order, including blocks of streams nobody reports on.
 *
 * It never guesses. A malformed block (bad integer, bad Huffman, an index past the table,
 * a size update the peer's SETTINGS forbid) marks the decoder broken for good: a real peer
 * would have closed the connection, and our table no longer matches the encoder's.
 * A block captured only in part yields the fields before the cut (they are exact) and
 * leaves the table unknown. With an unknown table (also when the capture joined mid-way)
 * blocks that only use the static table and literals are still exact; the first reference
 * into the dynamic table breaks the decoder too ('dynamic-table-unknown'): the table we
 * would answer from may be out of sync with the encoder's, so nothing after it is trusted
 * (issue 12: detect the desync, count it, stop decoding). A size update to 0 empties the
 * table, which makes it known again.
 *
 * Names and values are latin1 strings: one char per octet, as on the wire.
 */
import { decodeHuffman } from './huffman.ts';
import { STATIC_TABLE } from './hpack-static-table.ts';

/** SETTINGS_HEADER_TABLE_SIZE before the decoding side says otherwise. */
export const DEFAULT_HEADER_TABLE_SIZE = 4096;
/** The most table memory we keep per direction; a peer using more breaks the decoder. */
export const MAX_TRACKED_TABLE_SIZE = 65_536;
/** Header list size (RFC 9113 §6.5.2 accounting) past which fields are left out of the result. */
export const MAX_HEADER_LIST_SIZE = 65_536;
/** RFC 7541 §4.1: each entry costs its octets plus 32. */
const ENTRY_OVERHEAD = 32;
/** Integers past this are not sizes or indexes any peer sends. */
const MAX_INTEGER = 2 ** 28;

export type HpackError =
  | 'bad-integer'
  | 'index-zero'
  | 'index-out-of-table'
  | 'bad-huffman'
  | 'string-past-block'
  | 'size-update-too-large'
  | 'size-update-misplaced'
  | 'table-too-large'
  /** A reference into a dynamic table we never saw whole (joined mid-way, after a cut block). */
  | 'dynamic-table-unknown'
  /** Stopped from outside: the connection's other direction desynced. */
  | 'stopped'
  /** Header blocks or SETTINGS were in chunks the capture lost (the kernel's full ring buffer). */
  | 'capture-gap';

export interface HeaderField {
  /** Null: named by a dynamic-table entry of an unknown table (no longer produced: such a
   * reference breaks the decoder; kept nullable for the consumers' checks). */
  name: string | null;
  value: string | null;
}

export interface DecodedHeaderBlock {
  fields: HeaderField[];
  /** The block was captured only in part: fields after `fields` are not known. */
  cut: boolean;
  /** Fields past MAX_HEADER_LIST_SIZE were left out (the table still took them in). */
  overflowed: boolean;
  /** Fields with a null name or value. */
  unknownFields: number;
}

interface Entry {
  name: string;
  value: string;
}

// Thrown and caught inside decode() only; not Errors, so no stack is captured per cut or bad block.
class BlockEnded {}
class Malformed {
  readonly reason: HpackError;
  constructor(reason: HpackError) {
    this.reason = reason;
  }
}

export class HpackDecoder {
  /** Dynamic table, newest last; entries before #oldest are evicted. */
  #entries: Entry[] = [];
  #oldest = 0;
  #size = 0;
  #maxSize = DEFAULT_HEADER_TABLE_SIZE;
  /** The largest size the decoding side's SETTINGS allowed (an encoder may not exceed it). */
  #sizeLimit = DEFAULT_HEADER_TABLE_SIZE;
  #sizeLimitCapped = false;
  tableKnown: boolean;
  error: HpackError | null = null;

  constructor(options: { tableKnown: boolean }) {
    this.tableKnown = options.tableKnown;
    // Mid-way we may have missed SETTINGS that raised the limit.
    if (!options.tableKnown) this.allowTableSize(MAX_TRACKED_TABLE_SIZE);
  }

  /** The decoding side advertised SETTINGS_HEADER_TABLE_SIZE `size` (kept as the largest seen). */
  allowTableSize(size: number): void {
    if (size > MAX_TRACKED_TABLE_SIZE) this.#sizeLimitCapped = true;
    this.#sizeLimit = Math.max(this.#sizeLimit, Math.min(size, MAX_TRACKED_TABLE_SIZE));
  }

  /** A block went by that could not be decoded (not captured): later references are unknown. */
  forgetTable(): void {
    this.tableKnown = false;
    this.#entries = [];
    this.#oldest = 0;
    this.#size = 0;
  }

  /** No block is decoded from now on (the connection's other direction desynced). */
  stop(): void {
    this.error ??= 'stopped';
  }

  get dynamicEntries(): number {
    return this.#entries.length - this.#oldest;
  }

  /**
   * Decodes one header block. `complete`: the block was captured whole. Null once the
   * decoder is broken (see `error`).
   */
  decode(block: Buffer, complete: boolean): DecodedHeaderBlock | null {
    if (this.error) return null;
    const result: DecodedHeaderBlock = { fields: [], cut: false, overflowed: false, unknownFields: 0 };
    const reader = { buf: block, pos: 0 };
    let listSize = 0;
    let fieldSeen = false;
    try {
      while (reader.pos < block.length) {
        const field = this.#decodeRepresentation(reader, fieldSeen);
        if (field === null) continue; // a size update
        fieldSeen = true;
        listSize += (field.name?.length ?? 0) + (field.value?.length ?? 0) + ENTRY_OVERHEAD;
        if (listSize > MAX_HEADER_LIST_SIZE) {
          result.overflowed = true;
          continue;
        }
        if (field.name === null || field.value === null) result.unknownFields++;
        result.fields.push(field);
      }
    } catch (e) {
      if (e instanceof BlockEnded && !complete) {
        result.cut = true;
      } else if (e instanceof Malformed || e instanceof BlockEnded) {
        this.error = e instanceof Malformed ? e.reason : 'string-past-block';
        return null;
      } else {
        throw e;
      }
    }
    if (!complete) {
      result.cut = true;
      this.forgetTable();
    }
    return result;
  }

  /** One field representation at reader.pos; null for a dynamic table size update. */
  #decodeRepresentation(r: { buf: Buffer; pos: number }, fieldSeen: boolean): HeaderField | null {
    const first = r.buf[r.pos]!;
    if (first & 0x80) {
      // Indexed header field (§6.1).
      const index = readInteger(r, 7);
      if (index === 0) throw new Malformed('index-zero');
      const entry = this.#lookup(index);
      return { name: entry.name, value: entry.value };
    }
    if ((first & 0xe0) === 0x20) {
      // Dynamic table size update (§6.3): only before the block's first field.
      if (fieldSeen) throw new Malformed('size-update-misplaced');
      this.#resize(readInteger(r, 5));
      return null;
    }
    // Literals (§6.2): with incremental indexing (01), without (0000), never indexed (0001).
    const indexing = (first & 0xc0) === 0x40;
    const index = readInteger(r, indexing ? 6 : 4);
    let name: string | null;
    if (index === 0) name = readString(r);
    else name = this.#lookup(index).name;
    const value = readString(r);
    if (indexing) this.#insert(name, value);
    return { name, value };
  }

  /** The entry at `index` (1-based, static then dynamic). */
  #lookup(index: number): Entry {
    if (index <= STATIC_TABLE.length) {
      const [name, value] = STATIC_TABLE[index - 1]!;
      return { name, value };
    }
    if (!this.tableKnown) throw new Malformed('dynamic-table-unknown');
    const fromNewest = index - STATIC_TABLE.length - 1;
    if (fromNewest >= this.dynamicEntries) throw new Malformed('index-out-of-table');
    return this.#entries[this.#entries.length - 1 - fromNewest]!;
  }

  #insert(name: string | null, value: string): void {
    if (!this.tableKnown || name === null) {
      // An entry we cannot name still shifts every index: the table is unknown from here.
      this.forgetTable();
      return;
    }
    const size = name.length + value.length + ENTRY_OVERHEAD;
    this.#evictTo(this.#maxSize - size);
    // An entry larger than the table empties it and is not added (§4.4).
    if (size <= this.#maxSize) {
      this.#entries.push({ name, value });
      this.#size += size;
    }
  }

  #resize(size: number): void {
    if (size > this.#sizeLimit) throw new Malformed(this.#sizeLimitCapped ? 'table-too-large' : 'size-update-too-large');
    this.#maxSize = size;
    if (size === 0 && !this.tableKnown) this.tableKnown = true;
    this.#evictTo(size);
  }

  #evictTo(size: number): void {
    while (this.#size > size && this.dynamicEntries > 0) {
      const old = this.#entries[this.#oldest]!;
      this.#size -= old.name.length + old.value.length + ENTRY_OVERHEAD;
      this.#oldest++;
    }
    // Compact now and then so evicted entries do not pile up.
    if (this.#oldest > 64 && this.#oldest * 2 > this.#entries.length) {
      this.#entries = this.#entries.slice(this.#oldest);
      this.#oldest = 0;
    }
  }
}

/** An integer with an N-bit prefix (§5.1). */
function readInteger(r: { buf: Buffer; pos: number }, prefixBits: number): number {
  if (r.pos >= r.buf.length) throw new BlockEnded();
  const mask = (1 << prefixBits) - 1;
  let value = r.buf[r.pos++]! & mask;
  if (value < mask) return value;
  let shift = 0;
  for (;;) {
    if (r.pos >= r.buf.length) throw new BlockEnded();
    const byte = r.buf[r.pos++]!;
    value += (byte & 0x7f) * 2 ** shift;
    if (value > MAX_INTEGER) throw new Malformed('bad-integer');
    if ((byte & 0x80) === 0) return value;
    shift += 7;
  }
}

/** A string literal (§5.2), as latin1. */
function readString(r: { buf: Buffer; pos: number }): string {
  if (r.pos >= r.buf.length) throw new BlockEnded();
  const huffman = (r.buf[r.pos]! & 0x80) !== 0;
  const length = readInteger(r, 7);
  const end = r.pos + length;
  if (end > r.buf.length) throw new BlockEnded();
  const text = huffman ? decodeHuffman(r.buf, r.pos, end) : r.buf.toString('latin1', r.pos, end);
  if (text === null) throw new Malformed('bad-huffman');
  r.pos = end;
  return text;
}
