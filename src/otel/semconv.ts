/**
 * Attribute names. Stable semantic conventions come from @opentelemetry/semantic-conventions;
 * names still in development are spelled out here (the package's incubating entry point
 * is not meant for libraries to depend on), plus PerfCatch's own perfcatch.* names.
 */
export {
  ATTR_CLIENT_ADDRESS,
  ATTR_CLIENT_PORT,
  ATTR_ERROR_TYPE,
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_NETWORK_LOCAL_ADDRESS,
  ATTR_NETWORK_LOCAL_PORT,
  ATTR_NETWORK_PEER_ADDRESS,
  ATTR_NETWORK_PEER_PORT,
  ATTR_NETWORK_PROTOCOL_NAME,
  ATTR_NETWORK_PROTOCOL_VERSION,
  ATTR_NETWORK_TRANSPORT,
  ATTR_SERVER_ADDRESS,
  ATTR_SERVER_PORT,
  ATTR_SERVICE_NAME,
  ATTR_TELEMETRY_SDK_LANGUAGE,
  ATTR_TELEMETRY_SDK_NAME,
  ATTR_TELEMETRY_SDK_VERSION,
  ATTR_URL_FULL,
  ATTR_URL_PATH,
  ATTR_URL_QUERY,
  ATTR_URL_SCHEME,
  ATTR_USER_AGENT_ORIGINAL,
} from '@opentelemetry/semantic-conventions';

// Development-status semantic conventions.
export const ATTR_HTTP_REQUEST_SIZE = 'http.request.size';
export const ATTR_HTTP_RESPONSE_SIZE = 'http.response.size';
export const ATTR_PROCESS_PID = 'process.pid';
export const ATTR_PROCESS_EXECUTABLE_NAME = 'process.executable.name';
export const ATTR_HOST_NAME = 'host.name';

// PerfCatch's own measurements.
export const ATTR_PERFCATCH_CPU_TIME_NS = 'perfcatch.cpu_time_ns';
/** exact | apportioned | unknown: how the kernel attributed perfcatch.cpu_time_ns. */
export const ATTR_PERFCATCH_CPU_ATTRIBUTION = 'perfcatch.cpu_attribution';
/** CPU the request's thread ran after the response's last write (not in perfcatch.cpu_time_ns). */
export const ATTR_PERFCATCH_CPU_AFTER_RESPONSE_NS = 'perfcatch.cpu_after_response_ns';
/** exact | inferred: how the request that made a CLIENT call was found. */
export const ATTR_PERFCATCH_CALLER_ATTRIBUTION = 'perfcatch.caller_attribution';
export const ATTR_PERFCATCH_MEMORY_RSS_BYTES = 'perfcatch.memory_rss_bytes';
export const ATTR_PERFCATCH_CORRELATION_ID = 'perfcatch.correlation_id';
export const ATTR_PERFCATCH_REQUEST_ID = 'perfcatch.request_id';
export const ATTR_PERFCATCH_ROUTE = 'perfcatch.route';
export const ATTR_PERFCATCH_CAPTURE_INCOMPLETE = 'perfcatch.capture_incomplete';
export const ATTR_PERFCATCH_CONNECTION_REQUEST_SEQ = 'perfcatch.connection.request_seq';
export const ATTR_PERFCATCH_NEW_CONNECTION = 'perfcatch.new_connection';
export const ATTR_PERFCATCH_CONNECT_MS = 'perfcatch.connect_ms';

// RPC (gRPC over HTTP/2) semantic conventions, development status.
export const ATTR_RPC_SYSTEM = 'rpc.system';
export const ATTR_RPC_SERVICE = 'rpc.service';
export const ATTR_RPC_METHOD = 'rpc.method';
export const ATTR_RPC_GRPC_STATUS_CODE = 'rpc.grpc.status_code';
/** PerfCatch: the HTTP/2 stream id a request was (with perfcatch.connection.request_seq unset). */
export const ATTR_PERFCATCH_H2_STREAM_ID = 'perfcatch.h2.stream_id';
