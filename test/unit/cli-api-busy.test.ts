/**
 * The CLI against an agent that refuses a query as busy (429 with Retry-After, as
 * src/api/load-guard.ts answers when queries took their share of the agent's thread): it waits
 * as asked and tries again, a bounded number of times; then it says what the agent said.
 * A real HTTP server on loopback plays the agent's API.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { ApiSource } from '../../src/cli/sources.ts';
import { CliError } from '../../src/cli/args.ts';

describe('CLI queries refused as busy (429)', () => {
  let server: http.Server;
  let url = '';
  /** How many 429s to answer before the real answer; every hit is counted. */
  let busyFor = 0;
  let hits = 0;
  let retryAfter = '0';

  before(async () => {
    server = http.createServer((req, res) => {
      hits++;
      if (hits <= busyFor) {
        res.writeHead(429, { 'content-type': 'application/json', 'retry-after': retryAfter });
        res.end(JSON.stringify({ error: 'the API is busy with other queries; retry in a second' }));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ count: 1, requests: [{ request_id: 'a1', correlation_id: 'c-1' }] }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('waits as Retry-After says and tries again', async () => {
    [busyFor, hits, retryAfter] = [2, 0, '0.2'];
    const started = performance.now();
    const requests = await new ApiSource(url).requests({});
    assert.equal(requests[0]?.correlation_id, 'c-1');
    assert.equal(hits, 3, 'two refusals, then the answer');
    assert.ok(performance.now() - started >= 400, 'waited 0.2 s after each refusal');
  });

  it('gives up after three tries, with what the agent said', async () => {
    [busyFor, hits, retryAfter] = [100, 0, '0'];
    await assert.rejects(new ApiSource(url).requests({}), (err: unknown) => {
      assert.ok(err instanceof CliError);
      assert.match(err.message, /answered 429: the API is busy with other queries/);
      return true;
    });
    assert.equal(hits, 3);
  });
});
