/**
 * A keep-alive HTTP/1.1 client on a raw socket, so that the bytes it sends and receives per
 * request are known exactly: the ground truth for bytes_received / bytes_sent. Reads
 * Content-Length and chunked responses; can pipeline, and can dribble a request in pieces.
 */
import { connect, type Socket } from 'node:net';

export interface RawResponse {
  status: number;
  headers: Map<string, string>;
  body: Buffer;
  /** Bytes this client wrote for the request. */
  bytesSent: number;
  /** Bytes this client read for the response. */
  bytesReceived: number;
  /** From the first byte written to the last byte read. */
  latencyMs: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class RawHttpClient {
  private readonly socket: Socket;
  private buffered: Buffer = Buffer.alloc(0);
  private waiter: (() => void) | null = null;
  private closed = false;
  /** When the last chunk arrived: latency ends here, not when our promise chain resumes. */
  private lastDataAt = 0n;
  readonly ready: Promise<void>;

  constructor(port: number, host = '127.0.0.1') {
    this.socket = connect(port, host);
    this.socket.setNoDelay(true);
    this.ready = new Promise((resolve, reject) => {
      this.socket.once('connect', () => resolve());
      this.socket.once('error', reject);
    });
    this.socket.on('data', (d: Buffer) => {
      this.lastDataAt = process.hrtime.bigint();
      this.buffered = this.buffered.length ? Buffer.concat([this.buffered, d]) : d;
      this.waiter?.();
    });
    this.socket.on('close', () => {
      this.closed = true;
      this.waiter?.();
    });
    this.socket.on('error', () => {});
  }

  private async waitForData(): Promise<void> {
    if (this.closed) throw new Error('connection closed by server');
    await new Promise<void>((resolve) => (this.waiter = resolve));
    this.waiter = null;
  }

  /** Bytes up to and including the next CRLF at or after `from`. */
  private async lineEnd(from: number): Promise<number> {
    let i: number;
    while ((i = this.buffered.indexOf('\r\n', from)) === -1) await this.waitForData();
    return i + 2;
  }

  private async fill(n: number): Promise<void> {
    while (this.buffered.length < n) await this.waitForData();
  }

  /** Reads exactly one response: Content-Length, chunked, or (Connection: close) until EOF. */
  private async readResponse(): Promise<Omit<RawResponse, 'bytesSent' | 'latencyMs'>> {
    let headEnd = -1;
    while ((headEnd = this.buffered.indexOf('\r\n\r\n')) === -1) await this.waitForData();
    const head = this.buffered.toString('latin1', 0, headEnd);
    const [statusLine, ...lines] = head.split('\r\n');
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? '')?.[1]);
    const headers = new Map<string, string>();
    for (const l of lines) {
      const i = l.indexOf(':');
      if (i > 0) headers.set(l.slice(0, i).trim().toLowerCase(), l.slice(i + 1).trim());
    }
    let pos = headEnd + 4;
    let body: Buffer;
    if (/chunked/i.test(headers.get('transfer-encoding') ?? '')) {
      const parts: Buffer[] = [];
      for (;;) {
        const end = await this.lineEnd(pos);
        const size = parseInt(this.buffered.toString('latin1', pos, end - 2), 16);
        pos = end;
        if (size === 0) {
          pos = await this.lineEnd(pos); // empty trailer section
          break;
        }
        await this.fill(pos + size + 2);
        parts.push(Buffer.from(this.buffered.subarray(pos, pos + size)));
        pos += size + 2;
      }
      body = Buffer.concat(parts);
    } else if (headers.has('content-length')) {
      const total = pos + Number(headers.get('content-length'));
      await this.fill(total);
      body = Buffer.from(this.buffered.subarray(pos, total));
      pos = total;
    } else {
      while (!this.closed) await this.waitForData().catch(() => {});
      body = Buffer.from(this.buffered.subarray(pos));
      pos = this.buffered.length;
    }
    this.buffered = this.buffered.subarray(pos);
    return { status, headers, body, bytesReceived: pos };
  }

  /** Sends one request (already serialised) and reads its response. */
  async request(raw: Buffer | string): Promise<RawResponse> {
    return this.requestInPieces([raw], 0);
  }

  /** Sends one request in several writes, `gapMs` apart, and reads its response. */
  async requestInPieces(pieces: (Buffer | string)[], gapMs: number): Promise<RawResponse> {
    await this.ready;
    const bufs = pieces.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : p));
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < bufs.length; i++) {
      if (i > 0 && gapMs > 0) await sleep(gapMs);
      this.socket.write(bufs[i]!);
    }
    const r = await this.readResponse();
    const latencyMs = Number(this.lastDataAt - t0) / 1e6;
    return { ...r, bytesSent: bufs.reduce((n, b) => n + b.length, 0), latencyMs };
  }

  /** Pipelining: all requests in one write, then their responses in order. */
  async pipeline(raws: string[]): Promise<RawResponse[]> {
    await this.ready;
    const bufs = raws.map((r) => Buffer.from(r, 'latin1'));
    const t0 = process.hrtime.bigint();
    this.socket.write(Buffer.concat(bufs));
    const out: RawResponse[] = [];
    for (const b of bufs) {
      const r = await this.readResponse();
      out.push({ ...r, bytesSent: b.length, latencyMs: Number(this.lastDataAt - t0) / 1e6 });
    }
    return out;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.closed) return resolve();
      this.socket.once('close', () => resolve());
      this.socket.end();
    });
  }
}

export function getRequest(path: string, headers: Record<string, string> = {}): string {
  const lines = [`GET ${path} HTTP/1.1`, 'Host: 127.0.0.1', ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
  return lines.join('\r\n') + '\r\n\r\n';
}

export function postRequest(path: string, body: Buffer | string, headers: Record<string, string> = {}): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body) : body;
  const head = [
    `POST ${path} HTTP/1.1`,
    'Host: 127.0.0.1',
    `Content-Length: ${b.length}`,
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ].join('\r\n');
  return Buffer.concat([Buffer.from(head + '\r\n\r\n', 'latin1'), b]);
}

/** A request with a chunked body, in `chunks` chunks. */
export function chunkedPostRequest(path: string, body: Buffer, chunks: number, headers: Record<string, string> = {}): Buffer {
  const head = [`POST ${path} HTTP/1.1`, 'Host: 127.0.0.1', 'Transfer-Encoding: chunked', ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)].join('\r\n');
  const parts: Buffer[] = [Buffer.from(head + '\r\n\r\n', 'latin1')];
  const size = Math.ceil(body.length / chunks);
  for (let i = 0; i < body.length; i += size) {
    const c = body.subarray(i, i + size);
    parts.push(Buffer.from(`${c.length.toString(16)}\r\n`, 'latin1'), c, Buffer.from('\r\n', 'latin1'));
  }
  parts.push(Buffer.from('0\r\n\r\n', 'latin1'));
  return Buffer.concat(parts);
}

/** Sends `bytes` on a new connection and waits until the server closes it (at most 2 s). */
export function sendRaw(port: number, bytes: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1', () => s.write(bytes));
    const timer = setTimeout(() => s.destroy(), 2_000);
    s.on('data', () => {});
    s.on('error', () => {});
    s.on('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
