/**
 * A bounded-cardinality route template from a concrete path, for span names and metric
 * labels: segments that look like ids (numbers, UUIDs, long hex or mixed tokens) become {id}.
 */
import { BoundedMap } from '../util/bounded-map.ts';

const NUMERIC = /^\d+$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const HEXISH = /^[0-9a-f]{12,}$/i;
const TOKEN = /^(?=.*\d)[A-Za-z0-9_-]{16,}$/;
const MAX_SEGMENTS = 8;

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
  const segments = path.split('/').slice(1);
  const out: string[] = [];
  for (const seg of segments.slice(0, MAX_SEGMENTS)) {
    out.push(NUMERIC.test(seg) || UUID.test(seg) || HEXISH.test(seg) || TOKEN.test(seg) ? '{id}' : seg);
  }
  if (segments.length > MAX_SEGMENTS) out.push('*');
  return '/' + out.join('/');
}
