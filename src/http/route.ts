/**
 * A bounded-cardinality route template from a concrete path, for span names and metric
 * labels: segments that look like ids (numbers, UUIDs, long hex or mixed tokens) become {id}.
 */
import { BoundedMap } from '../util/bounded-map.ts';

const MAX_SEGMENTS = 8;
/** Where a UUID's dashes are. */
const UUID_DASHES = [8, 13, 18, 23];

/** Paths repeat: remember recent answers (bounded). */
const cache = new BoundedMap<string, string>(4096);

export function routeTemplate(path: string): string {
  const hit = cache.get(path);
  if (hit !== undefined) return hit;
  const route = computeRouteTemplate(path);
  cache.set(path, route);
  return route;
}

function computeRouteTemplate(path: string): string {
  if (!path.startsWith('/')) return path === '*' ? '*' : '/';
  const segments = path.split('/'); // [0] is the empty string before the leading '/'
  let route = '';
  for (let i = 1; i < segments.length && i <= MAX_SEGMENTS; i++) {
    const segment = segments[i]!;
    route += isIdLike(segment) ? '/{id}' : `/${segment}`;
  }
  return segments.length - 1 > MAX_SEGMENTS ? `${route}/*` : route;
}

/**
 * Numeric (\d+), hex of 12+ (any case), a UUID (any case), or a token of 16+ [A-Za-z0-9_-]
 * with a digit. One pass over the characters: this runs for every new path.
 */
function isIdLike(segment: string): boolean {
  const n = segment.length;
  let digits = 0;
  let hex = 0;
  let token = 0;
  for (let i = 0; i < n; i++) {
    const c = segment.charCodeAt(i);
    if (c >= 0x30 && c <= 0x39) digits++;
    else if ((c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46)) hex++;
    else if ((c >= 0x67 && c <= 0x7a) || (c >= 0x47 && c <= 0x5a) || c === 0x5f || c === 0x2d) token++;
    else return false; // none of the shapes allows it
  }
  hex += digits;
  token += hex;
  if (n > 0 && digits === n) return true;
  if (n >= 12 && hex === n) return true;
  if (n >= 16 && token === n && digits > 0) return true;
  return n === 36 && hex === 32 && UUID_DASHES.every((i) => segment.charCodeAt(i) === 0x2d);
}
