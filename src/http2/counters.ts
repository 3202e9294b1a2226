/** What the HTTP/2 decoding did, across connections (one object shared by the caller's connections). */
export interface Http2Counters {
  connections: number;
  /** Streams opened (tracked). */
  streams: number;
  /** Streams not tracked: the connection had too many open. */
  streamsDropped: number;
  /** Connections whose frames could no longer be followed. */
  frameDesyncs: number;
  /** Connections whose HPACK decoding stopped (a malformed block, or a reference into a table never seen whole). */
  hpackDesyncs: number;
  /** Header blocks not captured whole. */
  truncatedHeaderBlocks: number;
  /** Streams ended by the idle timeout (their connection's close never seen), and those connections. */
  streamsIdleExpired: number;
  connectionsIdleExpired: number;
  /** Gaps in a direction's capture the decoding resumed after (the kernel's ring buffer refused records). */
  gaps: number;
  /** Streams under way across such a gap: reported incomplete, bytes a lower bound. */
  streamsGapped: number;
  /** Of those, streams ended early as 'lost-in-gap': no frame of theirs since the gap while the
   * client opened more streams than the connection holds open at once (reported incomplete). */
  streamsEndedInGaps: number;
  /** Client stream ids a gap went past: streams begun and ended inside it, never reported (a
   * client may skip ids: an upper bound). */
  streamIdsSkippedInGaps: number;
}

export function newHttp2Counters(): Http2Counters {
  return { connections: 0, streams: 0, streamsDropped: 0, frameDesyncs: 0, hpackDesyncs: 0, truncatedHeaderBlocks: 0, streamsIdleExpired: 0, connectionsIdleExpired: 0, gaps: 0, streamsGapped: 0, streamsEndedInGaps: 0, streamIdsSkippedInGaps: 0 };
}
