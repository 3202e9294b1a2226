/**
 * correlation_id_regex runs against every stored record, so a backtracking pattern such as
 * `^([0-9a-f]+)+!$` would freeze the agent (issue 13, finding 2). Patterns are compiled for
 * V8's linear-time engine (flag `l`): matching costs O(pattern x input), whatever the
 * pattern. The engine needs a V8 flag; it is read when a RegExp is compiled, so setting it
 * here, before the first compilation, enables it without a command-line flag that every way
 * of starting the agent (bin, npm start, the image, tests) would have to repeat.
 */
import { setFlagsFromString } from 'node:v8';

setFlagsFromString('--enable-experimental-regexp-engine');

/** The engine is usable in this Node.js (checked once: the flag could be refused). */
export const LINEAR_ENGINE_AVAILABLE = ((): boolean => {
  try {
    return new RegExp('a', 'l').test('a');
  } catch {
    return false;
  }
})();

export class LinearRegexError extends Error {
  override name = 'LinearRegexError';
}

/**
 * Compiles `pattern` for linear-time matching. Throws LinearRegexError (with the reason a user
 * can act on) for an invalid pattern, one the linear engine cannot run (backreferences,
 * lookaround), or when this Node.js has no linear engine.
 */
export function compileLinearRegex(pattern: string): RegExp {
  if (!LINEAR_ENGINE_AVAILABLE) throw new LinearRegexError('regular expressions need a Node.js with the linear-time engine (Node 24)');
  try {
    new RegExp(pattern);
  } catch {
    throw new LinearRegexError('a valid regular expression');
  }
  try {
    return new RegExp(pattern, 'l');
  } catch {
    throw new LinearRegexError('a regular expression without backreferences or lookaround (they cannot run in linear time)');
  }
}
