/** `perfcatch services`: the services seen, with request count and last seen. */
import { numberFlag } from './args.ts';
import { SINCE_FLAG, type Command } from './context.ts';
import { CLUSTER_FLAGS, CLUSTER_USAGE } from './cluster-options.ts';
import { formatAge, formatTime, renderJson, renderTable } from './format.ts';

export const SERVICES_DEFAULT_SINCE = 60;

export const SERVICES: Command = {
  name: 'services',
  summary: 'list the services seen, with request count and last seen',
  usage: `Usage: perfcatch services [--since MIN] [options]

The services that served requests in the last MIN minutes.

Options:
  --since MIN   time window in minutes (default ${SERVICES_DEFAULT_SINCE})
${CLUSTER_USAGE}`,
  flags: { since: SINCE_FLAG, ...CLUSTER_FLAGS },
  positionals: 0,
  async run(ctx) {
    const since = numberFlag(ctx.args, 'since') ?? SERVICES_DEFAULT_SINCE;
    const services = await (await ctx.source()).services(since);
    if (ctx.json) {
      ctx.write(
        renderJson({
          since_minutes: since,
          count: services.length,
          services: services.map((s) => ({ service_name: s.service_name, process_names: s.process_names, count: s.count, last_seen: s.last_seen })),
        }),
      );
      return 0;
    }
    if (services.length === 0) {
      ctx.write(`no requests in the last ${since} min\n`);
      return 0;
    }
    const now = ctx.now();
    ctx.write(
      renderTable(
        [{ header: 'SERVICE', maxWidth: 40 }, { header: 'PROCESSES', maxWidth: 40 }, { header: 'COUNT', align: 'right' }, { header: 'LAST SEEN' }, { header: 'AGO', align: 'right' }],
        services.map((s) => [s.service_name, s.process_names.join(','), String(s.count), formatTime(s.last_seen), formatAge(now - s.last_seen)]),
        ctx.paint,
      ),
    );
    return 0;
  },
};
