/**
 * gRPC over HTTP/2: the call's service and method come from `:path` (/package.Service/Method),
 * its outcome from the grpc-status and grpc-message trailers (or a trailers-only response).
 */

export interface GrpcCall {
  /** Fully qualified service, e.g. `helloworld.Greeter`. */
  service: string;
  method: string;
  /** grpc-status, when the response's trailers were seen. */
  status: number | null;
  message: string | null;
}

/** grpc-message is free text from the server: kept short, it ends up in spans and storage. */
export const MAX_GRPC_MESSAGE = 256;

/** A request is gRPC when its content-type says so (application/grpc, application/grpc+proto, …). */
export function isGrpcContentType(contentType: string | null): boolean {
  return contentType !== null && /^application\/grpc(?:[+;]|$)/i.test(contentType);
}

/** Service and method from a gRPC `:path`, or null when it has another shape. */
export function parseGrpcPath(path: string | null): { service: string; method: string } | null {
  if (path === null) return null;
  const match = /^\/([^/?#]+)\/([^/?#]+)$/.exec(path);
  return match ? { service: match[1]!, method: match[2]! } : null;
}

/** grpc-status: a decimal code (0 OK … 16 UNAUTHENTICATED; others are passed on as sent). */
export function parseGrpcStatus(value: string): number | null {
  return /^\d{1,4}$/.test(value.trim()) ? Number(value.trim()) : null;
}
