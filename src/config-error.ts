/** A configuration problem, with a one-line message naming the flag or environment variable. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** A raw setting and where it came from (a flag or a variable), to name it in error messages. */
export interface RawValue {
  source: string;
  text: string;
}

export function fail(v: RawValue, expected: string): never {
  throw new ConfigError(`${v.source}: expected ${expected}, got ${JSON.stringify(v.text)}`);
}
