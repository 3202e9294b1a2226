/**
 * One exchange or request of one loader generation: connection ids restart with each loader,
 * so without the generation a new request could be taken for an old one (issue 13, finding 1).
 * A request on a server connection and the exchange it answers on the caller's connection
 * share this key's shape (seq N <-> seq N), which is how callers and callees are linked.
 */
export function exchangeKey(generation: number, connId: number, seq: number): string {
  return `${generation}:${connId}:${seq}`;
}
