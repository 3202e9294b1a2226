/**
 * Route templates replace id-like segments, but an application can still have unbounded
 * distinct paths: past MAX_ROUTES_PER_SERVICE a service's new routes are labelled "other".
 * Used for every route label PerfCatch emits (/metrics, remote write).
 */
export const MAX_ROUTES_PER_SERVICE = 200;

export class RouteLimiter {
  readonly #seen = new Map<string, Set<string>>();

  /** The route label: the template, "none" without one, "other" past the per-service cap. */
  label(service: string, route: string | null): string {
    if (route === null) return 'none';
    let routes = this.#seen.get(service);
    if (!routes) {
      routes = new Set();
      this.#seen.set(service, routes);
    }
    if (routes.has(route)) return route;
    if (routes.size >= MAX_ROUTES_PER_SERVICE) return 'other';
    routes.add(route);
    return route;
  }

  /** Forgets the routes of services not in `services` (their series all expired). */
  retain(services: ReadonlySet<string>): void {
    for (const service of this.#seen.keys()) if (!services.has(service)) this.#seen.delete(service);
  }
}
