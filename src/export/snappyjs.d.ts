/** Types for snappyjs (pure JavaScript Snappy, block format), which ships none. */
declare module 'snappyjs' {
  export function compress<T extends Uint8Array | ArrayBuffer>(uncompressed: T): T;
  export function uncompress<T extends Uint8Array | ArrayBuffer>(compressed: T, maxLength?: number): T;
}
