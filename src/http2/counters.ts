/** What the HTTP/2 decoding did, across connections (one object shared by the caller's connections). */
export interface Http2Counters {
  connections: number;
  /** Streams opened (tracked). */
  streams: number;
  /** Streams not tracked: the connection had too many open. */
  streamsDropped: number;
  /** Connections whose frames could no longer be followed. */
  frameDesyncs: number;
  /** Directions whose HPACK decoding broke (malformed block or index). */
  hpackDesyncs: number;
  /** Header blocks not captured whole. */
  truncatedHeaderBlocks: number;
}

export function newHttp2Counters(): Http2Counters {
  return { connections: 0, streams: 0, streamsDropped: 0, frameDesyncs: 0, hpackDesyncs: 0, truncatedHeaderBlocks: 0 };
}
