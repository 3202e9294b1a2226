/**
 * The agent's API token in a header of its own, besides `Authorization: Bearer`. The Kubernetes
 * API server's pod proxy (what `perfcatch … --cluster` goes through) consumes Authorization to
 * authenticate the user and does not forward it; it forwards this one.
 */
export const TOKEN_HEADER = 'x-perfcatch-token';
