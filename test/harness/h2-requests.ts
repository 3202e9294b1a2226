/** Client-side helpers of the HTTP/2 tests: bounded concurrency, and one request's outcome. */
import type http2 from 'node:http2';

/** Runs `n` jobs, `concurrency` at a time. */
export async function pool(n: number, concurrency: number, job: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) await job(next++);
    }),
  );
}

/** Sends GET or POST (with `body` bytes) on `session`; resolves with the response status once the stream ended. */
export async function h2Request(
  session: http2.ClientHttp2Session,
  method: 'GET' | 'POST',
  path: string,
  headers: Record<string, string> = {},
  body = 0,
): Promise<{ status: number; streamId: number }> {
  const req = session.request({ ':method': method, ':path': path, ...headers }, { endStream: method !== 'POST' });
  if (method === 'POST') req.end(Buffer.alloc(body, 0x63));
  const status = await new Promise<number>((resolve, reject) => {
    let s = 0;
    req.on('response', (h) => (s = Number(h[':status'])));
    req.on('data', () => {});
    req.on('end', () => resolve(s));
    req.on('error', reject);
  });
  return { status, streamId: req.id! };
}
