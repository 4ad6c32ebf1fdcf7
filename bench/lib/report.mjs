// Turns the harness's measurements into medians, a verdict against the project's
// targets, and the markdown report. No I/O here.

export const TARGETS = {
  throughputRatio: 1.0,             // redis-proxy ops/s >= twemproxy ops/s, every cell
  cpuUsPerReq: { 1: 15, 16: 2 },    // redis-proxy CPU per request, by pipeline depth
  rssMB: 80,                        // redis-proxy RSS during the runs and with idle clients
};

export function median(xs) {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

const MB = 1024 * 1024;

/** Groups runs into cells (target × pipeline × test) and reduces each to medians. */
export function summarise(runs, targets, pipelines, tests) {
  const cells = [];
  for (const target of targets) {
    for (const P of pipelines) {
      for (const test of tests) {
        const mine = runs.filter((r) => r.target === target && r.pipeline === P && r.test === test);
        const ok = mine.filter((r) => !r.error);
        const rss = ok.map((r) => r.maxRssBytes).filter((x) => Number.isFinite(x));
        cells.push({
          target, pipeline: P, test,
          runs: mine.length,
          okRuns: ok.length,
          errors: mine.filter((r) => r.error).map((r) => r.error),
          opsPerSec: median(ok.map((r) => r.rps)),
          p50ms: median(ok.map((r) => r.p50ms)),
          p99ms: median(ok.map((r) => r.p99ms)),
          cpuUsPerReq: median(ok.map((r) => r.cpuUsPerReq)),
          maxRssMB: rss.length ? Math.max(...rss) / MB : null,
          opsPerSecAll: mine.map((r) => r.rps ?? null),
        });
      }
    }
  }
  return cells;
}

export function cellOf(cells, target, P, test) {
  return cells.find((c) => c.target === target && c.pipeline === P && c.test === test);
}

/** PASS/FAIL lines against TARGETS. A measurement that is missing is a FAIL. */
export function verdict(cells, idle, pipelines, tests) {
  const lines = [];
  let pass = true;
  const mark = (ok) => { if (!ok) pass = false; return ok ? 'PASS' : 'FAIL'; };
  for (const P of pipelines) {
    for (const test of tests) {
      const px = cellOf(cells, 'redis-proxy', P, test);
      const tw = cellOf(cells, 'twemproxy', P, test);
      const name = `${test.toUpperCase()} -P ${P}`;
      const ratio = px?.opsPerSec && tw?.opsPerSec ? px.opsPerSec / tw.opsPerSec : null;
      const tput = ratio === null
        ? `throughput ${mark(false)} (${!px?.opsPerSec ? 'no redis-proxy result' : 'no twemproxy result'})`
        : `redis-proxy ${fmtInt(px.opsPerSec)} vs twemproxy ${fmtInt(tw.opsPerSec)} ops/s = ${ratio.toFixed(2)}x ${mark(ratio >= TARGETS.throughputRatio)} (need >= ${TARGETS.throughputRatio.toFixed(2)}x)`;
      const limit = TARGETS.cpuUsPerReq[P];
      const cpu = limit === undefined ? '' : px?.cpuUsPerReq == null
        ? `; CPU ${mark(false)} (no measurement)`
        : `; CPU ${px.cpuUsPerReq.toFixed(2)} us/req ${mark(px.cpuUsPerReq <= limit)} (need <= ${limit})`;
      lines.push(`${name}: ${tput}${cpu}`);
    }
  }
  const rss = cells.filter((c) => c.target === 'redis-proxy' && c.maxRssMB != null).map((c) => c.maxRssMB);
  lines.push(rss.length
    ? `RSS during runs: max ${Math.max(...rss).toFixed(1)} MB ${mark(Math.max(...rss) < TARGETS.rssMB)} (need < ${TARGETS.rssMB})`
    : `RSS during runs: ${mark(false)} (no measurement)`);
  const px = idle?.['redis-proxy'];
  lines.push(px?.withClientsMB != null
    ? `RSS with ${px.clients} idle clients: ${px.withClientsMB.toFixed(1)} MB ${mark(px.withClientsMB < TARGETS.rssMB)} (need < ${TARGETS.rssMB})`
    : `RSS with idle clients: ${mark(false)} (${px?.error ?? 'no measurement'})`);
  return { pass, lines };
}

export const fmtInt = (x) => (x == null ? '–' : Math.round(x).toLocaleString('en-US'));
const fmt = (x, d) => (x == null ? '–' : x.toFixed(d));

/**
 * A markdown table: columns are [heading, align] with align 'l' or 'r'; rows are arrays
 * of cell strings.
 */
export function mdTable(columns, rows) {
  return [
    `| ${columns.map(([h]) => h).join(' | ')} |`,
    `| ${columns.map(([, a]) => (a === 'r' ? '---:' : '---')).join(' | ')} |`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

/** The results table, markdown. */
export function table(cells) {
  return mdTable([
    ['target', 'l'], ['pipeline', 'r'], ['test', 'l'], ['ops/s (median)', 'r'], ['p50 ms', 'r'], ['p99 ms', 'r'],
    ['proxy CPU µs/req', 'r'], ['proxy max RSS MB', 'r'], ['ok runs', 'r'],
  ], cells.map((c) => {
    const note = c.okRuns === 0 && c.errors.length ? ' (error, see notes)' : '';
    return [c.target, c.pipeline, c.test.toUpperCase(), `${fmtInt(c.opsPerSec)}${note}`, fmt(c.p50ms, 3), fmt(c.p99ms, 3),
      fmt(c.cpuUsPerReq, 2), fmt(c.maxRssMB, 1), `${c.okRuns}/${c.runs}`];
  }));
}

/**
 * redis-proxy against the baseline build, per pipeline × test: the ops/s ratio
 * (redis-proxy / baseline) and both CPU costs per request. null when either target
 * was not run.
 */
export function comparison(cells, pipelines, tests) {
  if (!cells.some((c) => c.target === 'redis-proxy') || !cells.some((c) => c.target === 'baseline')) return null;
  const rows = [];
  for (const P of pipelines) {
    for (const test of tests) {
      const px = cellOf(cells, 'redis-proxy', P, test);
      const base = cellOf(cells, 'baseline', P, test);
      rows.push({
        pipeline: P, test,
        opsPerSec: px?.opsPerSec ?? null,
        baselineOpsPerSec: base?.opsPerSec ?? null,
        opsRatio: px?.opsPerSec && base?.opsPerSec ? px.opsPerSec / base.opsPerSec : null,
        cpuUsPerReq: px?.cpuUsPerReq ?? null,
        baselineCpuUsPerReq: base?.cpuUsPerReq ?? null,
      });
    }
  }
  return rows;
}

/** The comparison rows as a markdown table. */
export function comparisonTable(rows) {
  return mdTable([
    ['pipeline', 'r'], ['test', 'l'], ['redis-proxy ops/s', 'r'], ['baseline ops/s', 'r'], ['ops/s ratio', 'r'],
    ['CPU µs/req new', 'r'], ['CPU µs/req base', 'r'],
  ], rows.map((r) => [r.pipeline, r.test.toUpperCase(), fmtInt(r.opsPerSec), fmtInt(r.baselineOpsPerSec),
    r.opsRatio == null ? '–' : `${r.opsRatio.toFixed(2)}x`, fmt(r.cpuUsPerReq, 2), fmt(r.baselineCpuUsPerReq, 2)]));
}

/** The whole markdown report. */
export function markdown(r) {
  const out = [];
  out.push(`# redis-proxy benchmark — ${r.startedAt}`, '');
  out.push('## Machine', '');
  for (const [k, v] of Object.entries(r.machine)) out.push(`- ${k}: ${v}`);
  out.push('', '## Settings', '');
  for (const [k, v] of Object.entries(r.settings)) out.push(`- ${k}: ${typeof v === 'object' ? `\`${JSON.stringify(v)}\`` : v}`);
  out.push('', '## Results', '');
  out.push(`Medians over ${r.settings.rounds} rounds (max for RSS). "proxy CPU" and "proxy RSS" are the proxy process's own (utime+stime from /proc per request; VmRSS sampled every 100 ms); empty for direct.`, '');
  out.push(table(r.cells), '');
  for (const [name, idle] of Object.entries(r.idle ?? {})) {
    out.push(idle.error
      ? `- ${name}, ${idle.clients} idle clients: not measured (${idle.error})`
      : `- ${name}, ${idle.clients} idle clients: RSS ${idle.withClientsMB.toFixed(1)} MB with them connected (${idle.beforeMB.toFixed(1)} MB before, ${idle.afterMB.toFixed(1)} MB after closing)` +
        (idle.maxProcessMB != null && idle.maxProcessMB < idle.withClientsMB - 0.05 ? `; the largest single process (a worker) ${idle.maxProcessMB.toFixed(1)} MB` : ''));
  }
  if (r.routing?.length) {
    out.push('', 'Where the GETs were executed (INFO commandstats deltas, all rounds):', '');
    for (const l of r.routing) out.push(`- ${l}`);
  }
  if (r.comparison) {
    out.push('', `## redis-proxy vs baseline (${r.machine['redis-proxy commit'] ?? '?'} vs ${r.machine['baseline commit'] ?? '?'})`, '');
    out.push('ops/s ratio = redis-proxy / baseline, medians of the same interleaved rounds (above 1.00x: this build is faster). CPU µs/req of this build (new) and of the baseline (base).', '');
    out.push(comparisonTable(r.comparison));
  }
  out.push('', `## Verdict: ${r.verdict.pass ? 'PASS' : 'FAIL'}`, '');
  for (const l of r.verdict.lines) out.push(`- ${l}`);
  if (r.notes.length) {
    out.push('', '## Notes', '');
    for (const n of r.notes) out.push(`- ${n}`);
  }
  out.push('');
  return out.join('\n');
}
