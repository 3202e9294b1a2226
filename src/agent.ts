/**
 * The agent: wires the loader, the request pipeline (src/pipeline/pipeline.ts), the
 * ring-buffer store, metrics, span export and the HTTP API.
 */
import { readFileSync } from 'node:fs';
import { ConfigError, type AgentConfig } from './config.ts';
import type { DecodedRecord } from './decode/records.ts';
import { ExecIdentity } from './enrich/exec-identity.ts';
import { ProcessInfoCache } from './enrich/process-info.ts';
import { UnattributedCpuTable } from './enrich/unattributed-cpu.ts';
import { CorrelationExtractor } from './http/correlation.ts';
import { CounterTotals } from './loader/counter-totals.ts';
import { LoaderProcess } from './loader/loader-process.ts';
import { kernelOf } from './loader/kernel-info.ts';
import type { Logger } from './log.ts';
import { AgentMetrics } from './metrics/agent-metrics.ts';
import { protocolPortHint } from './otel/otlp-env.ts';
import { TraceSampler } from './otel/sampler.ts';
import { lossesByStage } from './metrics/loss-stages.ts';
import { SpanBuilder } from './otel/span-builder.ts';
import { createOtlpExporter, SpanExportQueue } from './otel/span-export.ts';
import { RequestPipeline } from './pipeline/pipeline.ts';
import { RemoteWriter } from './export/remote-write.ts';
import { SqliteStore } from './store/sqlite-store.ts';
import { SqliteReader } from './store/sqlite-reader.ts';
import { FallbackReader } from './store/fallback-reader.ts';
import { PodIndex } from './k8s/pod-index.ts';
import { PodMetadataResolver } from './k8s/pod-metadata.ts';
import { CgroupAllowList, CLOSED_CGROUP_FILTER } from './k8s/cgroup-allow-list.ts';
import type { RequestReader } from './store/request-reader.ts';
import { RequestStore } from './store/request-store.ts';
import { startApiServer, type ApiServer } from './api/server.ts';
import { degradedReasons, healthStatus } from './api/health-status.ts';
import { agentCounters, type FrameCounts } from './metrics/agent-counters.ts';
import type { PipelineCounters } from './types.ts';

export class Agent {
  private readonly store: RequestStore;
  private readonly pipeline: RequestPipeline;
  private readonly exportQueue: SpanExportQueue | null;
  private readonly spanBuilder: SpanBuilder | null;
  private readonly remoteWriter: RemoteWriter | null;
  /** Persistence (--db): written in batches, and what the API reads when configured. */
  private readonly db: SqliteStore | null;
  /** Reads the database in a worker thread (src/store/sqlite-reader.ts). */
  private readonly dbReader: SqliteReader | null;
  /** Pods on this node (--node-name), for namespace, pod and service metadata. */
  private readonly pods: PodIndex | null;
  /** --namespace/--pods as a kernel cgroup filter. */
  private allowList: CgroupAllowList | null = null;
  private readonly metrics: AgentMetrics;
  private readonly loader: LoaderProcess;
  /** OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES that processes exec'd with. */
  private readonly execIdentity = new ExecIdentity();
  private readonly processes = new ProcessInfoCache(this.execIdentity);
  /** Serving threads' CPU that no request was charged, by process. */
  private readonly unattributedCpu = new UnattributedCpuTable(this.processes);
  private api: ApiServer | null = null;
  /** --metrics-port: /metrics and /health apart from /api/*. */
  private metricsApi: ApiServer | null = null;
  /** Summed over loader restarts: each loader's counters start at 0. */
  private readonly kernelCounters = new CounterTotals();
  private readonly loaderCounters = new CounterTotals();
  /** Records lost to a full connection table (kernel conn_table_full), and when the count last grew. */
  private readonly connTableFull = { lost: 0, lastLossMs: null as number | null };
  private captureUp = false;
  private captureDownReason = 'starting';
  /** The agent's own counts; the rest of counters().agent belongs to the parts that count them. */
  private readonly frames: FrameCounts = { decoded: 0, malformed: 0 };
  private readonly config: AgentConfig;
  private readonly log: Logger;
  /** --api-token-file's token: /api/* requires it. */
  private readonly apiToken: string | null;

  constructor(config: AgentConfig, log: Logger, env: Record<string, string | undefined>) {
    this.config = config;
    this.log = log;
    // Read first: a bad token file is a one-line usage error before anything starts.
    this.apiToken = readApiToken(config.apiTokenFile);
    this.store = new RequestStore(config.bufferSize);
    if (config.sdkDisabled) log.info('OTEL_SDK_DISABLED=true: no OTLP export');
    for (const settings of [config.traceExport, config.metricExport]) {
      const hint = settings && protocolPortHint(settings);
      if (hint) log.warn(hint);
    }
    this.exportQueue = config.traceExport
      ? new SpanExportQueue(createOtlpExporter(config.traceExport), {
          onExportError: (m) => log.warn(`OTLP export to ${config.otlpEndpoint} failed: ${m}`),
        })
      : null;
    const queue = this.exportQueue;
    this.spanBuilder = queue
      ? new SpanBuilder((resource, span) => queue.add(resource, span), {
          sampler: new TraceSampler(config.sampler),
          resourceAttributes: config.resourceAttributes,
        })
      : null;
    // Opened first: a bad --db path is a one-line StoreError before anything starts.
    this.db = config.dbPath
      ? SqliteStore.open({ path: config.dbPath, retentionHours: config.dbRetentionHours, maxSizeMb: config.dbMaxSizeMb, log })
      : null;
    const db = this.db;
    this.dbReader = db ? new SqliteReader(db.path, () => db.flush()) : null;
    this.pods = config.nodeName
      ? new PodIndex({ nodeName: config.nodeName, ...(config.kubeconfig ? { kubeConfig: config.kubeconfig } : {}), logger: log })
      : null;
    this.remoteWriter = config.remoteWriteUrl ? new RemoteWriter({ url: config.remoteWriteUrl, log }) : null;
    const writer = this.remoteWriter;
    this.pipeline = new RequestPipeline(
      {
        correlation: new CorrelationExtractor(config.correlationHeaders),
        processes: this.processes,
        keepQuery: config.keepQuery,
        pods: this.pods ? new PodMetadataResolver(this.pods) : null,
      },
      this.spanBuilder,
      {
        // The pipeline stores each request in this.store itself (its history, below).
        record: (r) => {
          this.metrics.recordRequest(r);
          writer?.add(r);
          db?.add(r);
        },
        updated: (r) => db?.upsert(r),
      },
      undefined,
      this.store,
    );
    this.metrics = new AgentMetrics({
      counters: () => this.counters(),
      buffer: () => ({ size: this.store.size, capacity: this.store.capacity }),
      cpuUnattributed: () => this.unattributedCpu.byName(),
      ...(config.metricExport ? { otlp: { settings: config.metricExport, intervalMs: config.otlpMetricsIntervalMs } } : {}),
      resource: { ...config.resourceAttributes, 'service.name': config.agentServiceName },
      seriesTtlMs: config.metricsSeriesTtlMinutes * 60_000,
    });
    this.loader = new LoaderProcess(
      {
        loaderPath: config.loaderPath,
        bpfObjectPath: config.bpfObjectPath,
        captureRequestBytes: config.captureRequestBytes,
        captureResponseBytes: config.captureResponseBytes,
        ringbufBytes: config.ringbufBytes,
        drainIntervalMs: config.drainIntervalMs,
        connTableSize: config.connTableSize,
        pids: config.pids,
        ports: config.ports,
        processes: config.processes,
        // With --namespace/--pods the filter starts closed, until the allowed pods are known.
        cgroups: config.namespaces.length || config.podNames.length ? [CLOSED_CGROUP_FILTER] : [],
        kernelVariants: config.kernelVariants,
        bpfPinDir: config.bpfPinDir,
      },
      {
        onRecord: (rec, generation, loaderSeq) => this.handleRecord(rec, generation, loaderSeq),
        onChunkHandled: () => this.pipeline.detach(),
        onMalformed: (err) => {
          this.frames.malformed++;
          log.debug(`malformed loader frame: ${err.message}`);
        },
        onLog: (level, message) => log[level](message),
        onStateChange: (up, reason) => {
          this.captureUp = up;
          this.captureDownReason = reason;
          if (up) this.allowList?.resend(); // a restarted loader starts with the filter closed
          if (!up) log.error(`capture down: ${reason}`);
        },
      },
    );
  }

  /** Starts capture first (so privilege errors surface before anything listens), then the API. */
  async start(): Promise<void> {
    const pods = this.pods;
    if (pods && (this.config.namespaces.length || this.config.podNames.length)) {
      this.allowList = new CgroupAllowList({
        namespaces: this.config.namespaces,
        pods: this.config.podNames,
        lookup: (id) => pods.lookup(id),
        send: (command) => this.loader.send(command),
        log: this.log,
      });
    }
    // Not awaited: pod metadata fills in when the first list arrives; the API may be down.
    void pods?.start().then(() => this.allowList?.refresh());
    await this.loader.start();
    this.allowList?.start();
    this.api = await startApiServer({
      host: this.config.apiHost,
      port: this.config.apiPort,
      store: this.reader(),
      health: () => this.health(),
      metrics: (accept) => this.metrics.renderPrometheus(accept),
      token: this.apiToken,
    });
    if (this.config.metricsPort > 0) {
      this.metricsApi = await startApiServer({
        host: this.config.metricsHost,
        port: this.config.metricsPort,
        store: this.store,
        health: () => this.health(),
        metrics: (accept) => this.metrics.renderPrometheus(accept),
        endpoints: 'metrics',
      });
    }
    const info = this.loader.loaderInfo;
    const programs = Array.isArray(info?.programs) ? info.programs.length : 0;
    const kernel = kernelOf(info);
    const variants = Object.entries(kernel.variants).map(([k, v]) => `${k} ${v}`).join(', ');
    this.log.info(
      `perfcatch agent: ${programs} eBPF programs attached on kernel ${kernel.release ?? '?'} (${variants}); ` +
        `API on http://${this.config.apiHost}:${this.api.port}; OTLP ${this.config.otlpEndpoint ?? 'off'}`,
    );
  }

  /**
   * With --db the API serves history from the database, so it survives restarts; while
   * writes to it fail, from the ring buffer, which still has everything recent.
   */
  private reader(): RequestReader {
    const db = this.db;
    if (!db || !this.dbReader) return this.store;
    return new FallbackReader(this.dbReader, this.store, () => db.health().ok);
  }

  get apiPort(): number {
    return this.api?.port ?? 0;
  }

  /**
   * Every decoded loader record enters here, with the generation of the kernel state it came
   * from and the number of the loader process that sent it (LoaderProcess).
   */
  handleRecord(rec: DecodedRecord, generation: number, loaderSeq = generation): void {
    this.frames.decoded++;
    switch (rec.kind) {
      case 'data':
      case 'dependency':
      case 'request':
      case 'h2_conn':
      case 'h2_io':
        return this.pipeline.handle(rec, generation);
      case 'stats':
        // Kernel counters go on while a loader takes over its predecessor's state; the
        // loader's own restart with each process.
        this.kernelCounters.update(generation, rec.kernel);
        this.loaderCounters.update(loaderSeq, rec.loader);
        this.noteConnTableFull(this.kernelCounters.totals().conn_table_full ?? 0);
        return;
      case 'process_env':
        return this.execIdentity.record(rec);
      case 'process_cpu':
        return this.unattributedCpu.record(rec);
      case 'loader_info':
      case 'ring_mark':
        return;
    }
  }

  private noteConnTableFull(lost: number): void {
    if (lost <= this.connTableFull.lost) return;
    if (this.connTableFull.lastLossMs === null) {
      this.log.warn(`connection table full (--conn-table-size ${this.config.connTableSize}): the records of connections beyond it are lost and counted (kernel_conn_table_full)`);
    }
    this.connTableFull.lost = lost;
    this.connTableFull.lastLossMs = Date.now();
  }

  /** Kernel, loader and agent counters as their owners hold them now (/health, /metrics). */
  counters(): PipelineCounters {
    const agent = agentCounters({
      frames: this.frames,
      pipeline: this.pipeline,
      spans: this.spanBuilder,
      spanExport: this.exportQueue,
      storage: this.db,
      remoteWrite: this.remoteWriter,
      loader: this.loader,
    });
    return { kernel: this.kernelCounters.totals(), loader: this.loaderCounters.totals(), agent, h2: { ...this.pipeline.h2Counters } };
  }

  health(): { ok: boolean; body: unknown } {
    const info = this.loader.loaderInfo;
    const c = this.counters();
    const storage = this.db?.health() ?? null;
    const reasons = degradedReasons({
      captureUp: this.captureUp,
      nowMs: Date.now(),
      storage,
      exportFailingSinceMs: this.exportQueue?.failingSince ?? null,
      lastLoaderRestartMs: this.loader.lastRestartAt,
      loaderRestarts: this.loader.restartCount,
      connTableFull: { ...this.connTableFull, size: this.config.connTableSize },
      podFilter: this.allowList && this.pods ? this.pods.health() : null,
    });
    return {
      ok: this.captureUp,
      body: {
        status: healthStatus(this.captureUp, reasons),
        ...(this.captureUp ? {} : { reason: this.captureDownReason }),
        ...(reasons.length ? { degraded: reasons } : {}),
        programs: Array.isArray(info?.programs) ? info.programs : [],
        kernel: kernelOf(info),
        // Whether the kernel state outlives a loader (loader/src/pins.rs): state off|fresh|reused.
        pins: info?.['pins'] ?? null,
        buffer: { size: this.store.size, capacity: this.store.capacity },
        otlp: this.config.otlpEndpoint
          ? {
              endpoint: this.config.otlpEndpoint,
              protocol: this.config.traceExport?.protocol,
              sampler: this.config.sampler,
              sampled_out: c.agent.spans_sampled_out,
              ...this.exportQueue?.counters,
            }
          : null,
        remote_write: this.remoteWriter ? { url: this.config.remoteWriteUrl, ...this.remoteWriter.counters } : null,
        storage,
        kubernetes: this.pods ? this.pods.health() : null,
        lost: lossesByStage(c),
        counters: c,
        // With the requests' CPU, the serving threads' whole CPU (README, "How it works").
        cpu_unattributed_ms: this.unattributedCpu.top(20),
      },
    };
  }

  async stop(): Promise<void> {
    await this.loader.stop();
    this.pipeline.flush();
    await this.api?.close();
    await this.metricsApi?.close();
    await this.exportQueue?.shutdown();
    await this.remoteWriter?.shutdown();
    await this.metrics.shutdown();
    await this.dbReader?.close();
    this.db?.close();
    this.allowList?.stop();
    await this.pods?.stop();
  }
}

/** The API token from --api-token-file (trimmed); a missing or empty file is a one-line error. */
function readApiToken(file: string | null): string | null {
  if (file === null) return null;
  let token: string;
  try {
    token = readFileSync(file, 'utf8').trim();
  } catch (e) {
    throw new ConfigError(`--api-token-file ${file}: cannot read it (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  if (token.length < 16) throw new ConfigError(`--api-token-file ${file}: the token must be at least 16 characters`);
  return token;
}
