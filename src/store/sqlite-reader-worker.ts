/**
 * The database side of SqliteReader (sqlite-reader.ts), in a worker thread: its own
 * read-only connection (WAL lets it read while the agent writes), its own heap with a hard
 * cap, and each query within a time and row budget. Messages: {id, op, args} in,
 * {id, value} or {id, error, budget} out.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { QueryBudget, QueryBudgetError } from './query-budget.ts';
import type { RequestQuery } from './request-reader.ts';
import { SqliteStore } from './sqlite-store.ts';

export interface ReaderWorkerData {
  path: string;
  timeBudgetMs: number;
  rowBudget: number;
}

export type ReaderRequest =
  | { id: number; op: 'query'; query: Omit<RequestQuery, 'correlation_id_regex'> & { regex?: string }; now: number }
  | { id: number; op: 'findById'; requestId: string }
  | { id: number; op: 'services'; sinceMinutes: number; now: number };

export type ReaderReply = { id: number; value: unknown } | { id: number; error: string; budget: boolean };

const config = workerData as ReaderWorkerData;
const store = SqliteStore.open({ path: config.path, readOnly: true, retentionHours: 1e6, maxSizeMb: 1e6 });

function run(req: ReaderRequest): unknown {
  const budget = new QueryBudget(config.timeBudgetMs, config.rowBudget);
  switch (req.op) {
    case 'query': {
      const { regex, ...rest } = req.query;
      // Recompiled here for the linear-time engine (checked by the API before it was sent).
      const q: RequestQuery = regex === undefined ? rest : { ...rest, correlation_id_regex: new RegExp(regex, 'l') };
      return store.query(q, req.now, budget);
    }
    case 'findById':
      return store.findById(req.requestId);
    case 'services':
      return store.services(req.sinceMinutes, req.now, budget);
  }
}

parentPort!.on('message', (req: ReaderRequest) => {
  let reply: ReaderReply;
  try {
    reply = { id: req.id, value: run(req) };
  } catch (e) {
    reply = { id: req.id, error: e instanceof Error ? e.message : String(e), budget: e instanceof QueryBudgetError };
  }
  parentPort!.postMessage(reply);
});
