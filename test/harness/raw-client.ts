/**
 * A keep-alive HTTP/1.1 client on a raw socket, so that the bytes it sends and receives per
 * request are known exactly: the ground truth for bytes_received / bytes_sent.
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
  latencyMs: number;
}

export class RawHttpClient {
  private readonly socket: Socket;
  private buffered: Buffer = Buffer.alloc(0);
  private waiter: (() => void) | null = null;
  private closed = false;
  readonly ready: Promise<void>;

  constructor(port: number, host = '127.0.0.1') {
    this.socket = connect(port, host);
    this.socket.setNoDelay(true);
    this.ready = new Promise((resolve, reject) => {
      this.socket.once('connect', () => resolve());
      this.socket.once('error', reject);
    });
    this.socket.on('data', (d: Buffer) => {
      this.buffered = this.buffered.length ? Buffer.concat([this.buffered, d]) : d;
      this.waiter?.();
    });
    this.socket.on('close', () => {
      this.closed = true;
      this.waiter?.();
    });
  }

  private async waitForData(): Promise<void> {
    if (this.closed) throw new Error('connection closed by server');
    await new Promise<void>((resolve) => (this.waiter = resolve));
    this.waiter = null;
  }

  /** Sends one request (already serialised) and reads exactly one Content-Length response. */
  async request(raw: Buffer | string): Promise<RawResponse> {
    await this.ready;
    const bytes = typeof raw === 'string' ? Buffer.from(raw, 'latin1') : raw;
    const t0 = process.hrtime.bigint();
    this.socket.write(bytes);
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
    const length = Number(headers.get('content-length') ?? 0);
    const total = headEnd + 4 + length;
    while (this.buffered.length < total) await this.waitForData();
    const body = Buffer.from(this.buffered.subarray(headEnd + 4, total));
    this.buffered = this.buffered.subarray(total);
    const latencyMs = Number(process.hrtime.bigint() - t0) / 1e6;
    return { status, headers, body, bytesSent: bytes.length, bytesReceived: total, latencyMs };
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
