/**
 * One exchange or request of one loader generation: connection ids restart with each loader,
 * so without the generation a new request could be taken for an old one (issue 13, finding 1).
 * A request on a server connection and the exchange it answers on the caller's connection
 * share this key's shape (seq N <-> seq N), which is how callers and callees are linked.
 */
export function exchangeKey(generation: number, connId: number, seq: number): string {
  return `${generation}:${connId}:${seq}`;
}

/** A string exchangeKey() back to its parts (the HTTP/2 paths that carry keys as strings). */
export function exchangeKeyParts(key: string): { generation: number; connId: number; seq: number } | null {
  const [g, c, s] = key.split(':');
  const generation = Number(g);
  const connId = Number(c);
  const seq = Number(s);
  if (!Number.isSafeInteger(generation) || !Number.isSafeInteger(connId) || !Number.isSafeInteger(seq) || s === undefined) return null;
  return { generation, connId, seq };
}
