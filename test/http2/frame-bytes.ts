/** One HTTP/2 frame's bytes (RFC 9113 §4.1); a number as payload is that many filler bytes. */
export function h2Frame(type: number, flags: number, stream: number, payload: Buffer | number = 0): Buffer {
  const body = typeof payload === 'number' ? Buffer.alloc(payload, 0x5a) : payload;
  const h = Buffer.alloc(9);
  h.writeUIntBE(body.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, body]);
}
