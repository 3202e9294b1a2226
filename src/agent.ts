/**
 * The agent: wires the loader, the request pipeline (src/pipeline/pipeline.ts), the
 * ring-buffer store, metrics, span export and the HTTP API.
 */
import type { AgentConfig } from './config.ts';
import type { DecodedRecord } from './decode/records.ts';
import { ProcessInfoCache } from './enrich/process-info.ts';
import { CorrelationExtractor } from './http/correlation.ts';
import { LoaderProcess } from './loader/loader-process.ts';
import { kernelOf } from './loader/kernel-info.ts';
import type { Logger } from './log.ts';
import { AgentMetrics } from './metrics/agent-metrics.ts';
import { SpanBuilder } from './otel/span-builder.ts';
import { createOtlpExporter, SpanExportQueue } from './otel/span-export.ts';
import { RequestPipeline } from './pipeline/pipeline.ts';
import { RemoteWriter } from './export/remote-write.ts';
import { SqliteStore } from './store/sqlite-store.ts';
import { PodIndex } from './k8s/pod-index.ts';
import { PodMetadataResolver } from './k8s/pod-metadata.ts';
import { CgroupAllowList, CLOSED_CGROUP_FILTER } from './k8s/cgroup-allow-list.ts';
import type { RequestReader } from './store/request-reader.ts';
import { RequestStore } from './store/request-store.ts';
import { startApiServer, type ApiServer } from './api/server.ts';
import type { AgentCounters, PipelineCounters } from './types.ts';

export class Agent {
  private readonly store: RequestStore;
  private readonly pipeline: RequestPipeline;
  private readonly exportQueue: SpanExportQueue | null;
  private readonly remoteWriter: RemoteWriter | null;
  /** Persistence (--db): written in batches, and what the API reads when configured. */
  private readonly db: SqliteStore | null;
  /** Pods on this node (--node-name), for namespace, pod and service metadata. */
  private readonly pods: PodIndex | null;
  /** --namespace/--pods as a kernel cgroup filter. */
  private allowList: CgroupAllowList | null = null;
  private readonly metrics: AgentMetrics;
  private readonly loader: LoaderProcess;
  private api: ApiServer | null = null;
  private kernelCounters: Record<string, number> = {};
  private loaderCounters: Record<string, number> = {};
  private captureUp = false;
  private captureDownReason = 'starting';
  private readonly counters: AgentCounters = {
    frames_decoded: 0,
    frames_malformed: 0,
    requests_recorded: 0,
    requests_not_http: 0,
    data_orphaned: 0,
    spans_started: 0,
    spans_exported: 0,
    spans_export_failed: 0,
    spans_dropped: 0,
    loader_restarts: 0,
    dependencies_recorded: 0,
    dependencies_late: 0,
    dependencies_orphaned: 0,
    links_made: 0,
    links_timed_out: 0,
    requests_updated: 0,
    storage_dropped: 0,
    storage_write_errors: 0,
    remote_write_dropped: 0,
  };
  private readonly config: AgentConfig;
  private readonly log: Logger;

  constructor(config: AgentConfig, log: Logger, env: Record<string, string | undefined>) {
    this.config = config;
    this.log = log;
    this.store = new RequestStore(config.bufferSize);
    this.exportQueue = config.otlpEndpoint
      ? new SpanExportQueue(createOtlpExporter(config.otlpEndpoint, env), {
          onExportError: (m) => log.warn(`OTLP export to ${config.otlpEndpoint} failed: ${m}`),
        })
      : null;
    const queue = this.exportQueue;
    // Opened first: a bad --db path is a one-line StoreError before anything starts.
    this.db = config.dbPath
      ? SqliteStore.open({ path: config.dbPath, retentionHours: config.dbRetentionHours, maxSizeMb: config.dbMaxSizeMb, log })
      : null;
    const db = this.db;
    this.pods = config.nodeName
      ? new PodIndex({ nodeName: config.nodeName, ...(config.kubeconfig ? { kubeConfig: config.kubeconfig } : {}), logger: log })
      : null;
    this.remoteWriter = config.remoteWriteUrl ? new RemoteWriter({ url: config.remoteWriteUrl, log }) : null;
    const writer = this.remoteWriter;
    this.pipeline = new RequestPipeline(
      {
        correlation: new CorrelationExtractor(config.correlationHeaders),
        processes: new ProcessInfoCache(),
        keepQuery: config.keepQuery,
        pods: this.pods ? new PodMetadataResolver(this.pods) : null,
      },
      queue
        ? new SpanBuilder((resource, span) => {
            this.counters.spans_started++;
            queue.add(resource, span);
          })
        : null,
      {
        record: (r) => {
          this.store.add(r);
          this.metrics.recordRequest(r);
          writer?.add(r);
          db?.add(r);
        },
        updated: (r) => db?.upsert(r),
      },
    );
    this.metrics = new AgentMetrics({
      counters: () => this.pipelineCounters(),
      buffer: () => ({ size: this.store.size, capacity: this.store.capacity }),
      ...(config.otlpMetrics && config.otlpEndpoint
        ? { otlp: { endpoint: config.otlpEndpoint, intervalMs: config.otlpMetricsIntervalMs } }
        : {}),
    });
    this.loader = new LoaderProcess(
      {
        loaderPath: config.loaderPath,
        bpfObjectPath: config.bpfObjectPath,
        captureRequestBytes: config.captureRequestBytes,
        captureResponseBytes: config.captureResponseBytes,
        ringbufBytes: config.ringbufBytes,
        pids: config.pids,
        ports: config.ports,
        processes: config.processes,
        // With --namespace/--pods the filter starts closed, until the allowed pods are known.
        cgroups: config.namespaces.length || config.podNames.length ? [CLOSED_CGROUP_FILTER] : [],
        kernelVariants: config.kernelVariants,
      },
      {
        onRecord: (rec) => this.handleRecord(rec),
        onMalformed: (err) => {
          this.counters.frames_malformed++;
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
      metrics: () => this.metrics.renderPrometheus(),
    });
    const info = this.loader.loaderInfo;
    const programs = Array.isArray(info?.programs) ? info.programs.length : 0;
    const kernel = kernelOf(info);
    const variants = Object.entries(kernel.variants).map(([k, v]) => `${k} ${v}`).join(', ');
    this.log.info(
      `perfcatch agent: ${programs} eBPF programs attached on kernel ${kernel.release ?? '?'} (${variants}); ` +
        `API on http://${this.config.apiHost}:${this.api.port}; OTLP ${this.config.otlpEndpoint ?? 'off'}`,
    );
  }

  /** With --db the API serves history from the database, so it survives restarts. */
  private reader(): RequestReader {
    return this.db ?? this.store;
  }

  get apiPort(): number {
    return this.api?.port ?? 0;
  }

  /** Every decoded loader record enters here. */
  handleRecord(rec: DecodedRecord): void {
    this.counters.frames_decoded++;
    switch (rec.kind) {
      case 'data':
      case 'dependency':
      case 'request':
        return this.pipeline.handle(rec);
      case 'stats':
        this.kernelCounters = rec.kernel;
        this.loaderCounters = rec.loader;
        return;
      case 'loader_info':
        return;
    }
  }

  pipelineCounters(): PipelineCounters {
    const q = this.exportQueue?.counters;
    this.counters.spans_exported = q?.exported ?? 0;
    this.counters.spans_export_failed = q?.failed ?? 0;
    this.counters.spans_dropped = q?.dropped ?? 0;
    const p = this.pipeline.counters();
    this.counters.requests_recorded = p.requests;
    this.counters.requests_not_http = p.requestsNotHttp;
    this.counters.data_orphaned = p.dataOrphaned;
    this.counters.dependencies_recorded = p.dependencies;
    this.counters.dependencies_late = p.dependenciesLate;
    this.counters.dependencies_orphaned = p.dependenciesOrphaned;
    this.counters.links_made = p.linksMade;
    this.counters.links_timed_out = p.linksTimedOut;
    this.counters.requests_updated = p.requestsUpdated;
    this.counters.storage_dropped = this.db?.droppedRecords ?? 0;
    this.counters.storage_write_errors = this.db?.writeErrors ?? 0;
    this.counters.remote_write_dropped = this.remoteWriter?.counters.samplesDropped ?? 0;
    this.counters.loader_restarts = this.loader.restartCount;
    return { kernel: this.kernelCounters, loader: this.loaderCounters, agent: { ...this.counters } };
  }

  health(): { ok: boolean; body: unknown } {
    const info = this.loader.loaderInfo;
    const c = this.pipelineCounters();
    return {
      ok: this.captureUp,
      body: {
        status: this.captureUp ? 'ok' : 'capture_down',
        ...(this.captureUp ? {} : { reason: this.captureDownReason }),
        programs: Array.isArray(info?.programs) ? info.programs : [],
        kernel: kernelOf(info),
        buffer: { size: this.store.size, capacity: this.store.capacity },
        otlp: this.config.otlpEndpoint
          ? { endpoint: this.config.otlpEndpoint, ...this.exportQueue?.counters }
          : null,
        remote_write: this.remoteWriter ? { url: this.config.remoteWriteUrl, ...this.remoteWriter.counters } : null,
        storage: this.db ? this.db.health() : null,
        kubernetes: this.pods ? this.pods.health() : null,
        lost: {
          kernel_ringbuf_request: c.kernel.rb_drop_request ?? 0,
          kernel_ringbuf_data: c.kernel.rb_drop_data ?? 0,
          kernel_conn_table_full: c.kernel.conn_table_full ?? 0,
          kernel_capture_shed: c.kernel.capture_shed ?? 0,
          kernel_ringbuf_dependency: c.kernel.rb_drop_dependency ?? 0,
          pipe_malformed: c.loader.malformed ?? 0,
          agent_malformed: c.agent.frames_malformed,
          agent_data_orphaned: c.agent.data_orphaned,
          agent_dependencies_orphaned: c.agent.dependencies_orphaned,
          spans_dropped: c.agent.spans_dropped,
          spans_failed: c.agent.spans_export_failed,
          remote_write_samples_dropped: c.agent.remote_write_dropped,
          storage_dropped: c.agent.storage_dropped,
        },
        counters: c,
      },
    };
  }

  async stop(): Promise<void> {
    await this.loader.stop();
    this.pipeline.flush();
    await this.api?.close();
    await this.exportQueue?.shutdown();
    await this.remoteWriter?.shutdown();
    await this.metrics.shutdown();
    this.db?.close();
    this.allowList?.stop();
    await this.pods?.stop();
  }
}
