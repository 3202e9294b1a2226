/** In-kernel cost of the agent's eBPF programs, from the kernel's own run statistics. */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/**
 * Sum of run_time_ns and run_cnt over the agent's programs (bpf_stats must be on): those the
 * loader holds (/proc/<pid>/fdinfo) and those connected to them through shared maps
 * (bpftool's map_ids), so that other agents' programs of the same names (tests running beside
 * the bench) are left out. A loader that took over a pinned state (loader/src/pins.rs) holds
 * neither the programs nor their links, only some of the maps. Names and counters from
 * bpftool.
 */
export interface BpfStats {
  ns: number;
  runs: number;
  byProgram: Map<string, { ns: number; runs: number }>;
}

interface BpftoolProgram {
  id: number;
  name?: string;
  run_time_ns?: number;
  run_cnt?: number;
  map_ids?: number[];
}

/** The agent's loaded programs (as above), from bpftool. */
function agentPrograms(loaderPid: number): BpftoolProgram[] {
  const ids = new Set<number>();
  const mapIds = new Set<number>();
  for (const fd of readdirSync(`/proc/${loaderPid}/fdinfo`)) {
    let info: string;
    try {
      info = readFileSync(`/proc/${loaderPid}/fdinfo/${fd}`, 'utf8');
    } catch {
      continue; // closed meanwhile
    }
    const id = /^prog_id:\s+(\d+)/m.exec(info);
    if (id) ids.add(Number(id[1]));
    const map = /^map_id:\s+(\d+)/m.exec(info);
    if (map) mapIds.add(Number(map[1]));
  }
  const progs = JSON.parse(execFileSync('bpftool', ['prog', 'show', '-j'], { encoding: 'utf8' })) as BpftoolProgram[];
  // Every program that shares a map with the loader's, and with those programs, until none is
  // added: the loader holds only some maps (a program such as the epoll hooks may use none of
  // them), and after a pinned take-over no program at all.
  for (let grew = true; grew; ) {
    grew = false;
    for (const p of progs) {
      const maps = p.map_ids ?? [];
      if (!ids.has(p.id) && maps.some((m) => mapIds.has(m))) {
        ids.add(p.id);
        grew = true;
      }
      if (!ids.has(p.id)) continue;
      for (const m of maps) {
        if (mapIds.has(m)) continue;
        mapIds.add(m);
        grew = true;
      }
    }
  }
  if (ids.size === 0) throw new Error(`bench: no BPF programs of the loader ${loaderPid} found`);
  return progs.filter((p) => ids.has(p.id));
}

/** The agent's programs: id to name (bpftool's, cut to 15 characters). */
export function agentProgramIds(loaderPid: number): Map<number, string> {
  return new Map(agentPrograms(loaderPid).map((p) => [p.id, p.name ?? `id ${p.id}`]));
}

export function bpfStats(loaderPid: number): BpfStats {
  const stats: BpfStats = { ns: 0, runs: 0, byProgram: new Map() };
  for (const p of agentPrograms(loaderPid)) {
    const name = p.name ?? `id ${p.id}`;
    const s = { ns: p.run_time_ns ?? 0, runs: p.run_cnt ?? 0 };
    stats.ns += s.ns;
    stats.runs += s.runs;
    const earlier = stats.byProgram.get(name);
    stats.byProgram.set(name, earlier ? { ns: earlier.ns + s.ns, runs: earlier.runs + s.runs } : s);
  }
  return stats;
}

/** Per program: runs and ns per request between two samples, costliest first. */
export function bpfPerProgram(before: BpfStats, after: BpfStats, requests: number): Record<string, { runsPerRequest: number; nsPerRequest: number; nsPerRun: number }> {
  const rows = [...after.byProgram].map(([name, a]) => {
    const b = before.byProgram.get(name) ?? { ns: 0, runs: 0 };
    const runs = a.runs - b.runs;
    const ns = a.ns - b.ns;
    return [name, { runsPerRequest: runs / requests, nsPerRequest: ns / requests, nsPerRun: runs ? ns / runs : 0 }] as const;
  });
  rows.sort((x, y) => y[1].nsPerRequest - x[1].nsPerRequest);
  return Object.fromEntries(rows.filter(([, r]) => r.runsPerRequest > 0));
}

/** Turns the kernel's run statistics on or off (they cost two clock reads per run). */
export function setBpfStats(on: boolean): void {
  execFileSync('sysctl', ['-qw', `kernel.bpf_stats_enabled=${on ? 1 : 0}`]);
}
