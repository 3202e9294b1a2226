/** Query strings are redacted by default: they often carry tokens and personal data. */
import type { HttpRequestHead } from './parse.ts';

export const REDACTED = 'REDACTED';

/** The path as stored and exported: with its query string, which is redacted by default. */
export function pathWithQuery(head: HttpRequestHead, keepQuery: boolean): string {
  return head.query === null ? head.path : `${head.path}?${keepQuery ? head.query : REDACTED}`;
}
