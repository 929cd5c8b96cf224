/**
 * bench/startup: how long `kraftwerk --help` takes to start and exit, beside
 * `node -e 0` (starting Node itself) as the floor, median of --runs each,
 * interleaved so both see the same machine load. Goal: under 300 ms.
 * Run: npm run bench:startup  (or node --import tsx bench/startup.ts --runs 20)
 */
import { BenchFailure, CLI, benchArgs, main, median, ms, percentile, ratio, run, table } from './lib.ts';

async function bench(): Promise<void> {
  const args = benchArgs({ runs: 20 });
  const cases = [
    { name: 'node -e 0 (floor)', argv: [process.execPath, '-e', '0'] },
    { name: 'kraftwerk --help', argv: [process.execPath, CLI, '--help'] },
    { name: 'kraftwerk --version', argv: [process.execPath, CLI, '--version'] },
  ];
  const times = new Map<string, number[]>(cases.map((c) => [c.name, []]));
  // One unmeasured round warms the file cache.
  for (const c of cases) await run(c.argv);
  for (let i = 0; i < args.runs; i++) {
    for (const c of cases) {
      const r = await run(c.argv);
      if (r.code !== 0) throw new BenchFailure(`${c.name} exited ${r.code}: ${r.stderr.trim()}`);
      times.get(c.name)!.push(r.ms);
    }
  }
  const floor = median(times.get(cases[0]!.name)!);
  const rows = cases.map((c) => {
    const t = times.get(c.name)!;
    return [c.name, ms(median(t)), ms(percentile(t, 90)), ratio(median(t), floor)];
  });
  const help = median(times.get('kraftwerk --help')!);
  process.stdout.write(
    `bench/startup: median of ${args.runs} runs each\n\n${table(['command', 'median', 'p90', 'ratio'], rows)}\n\n` +
      `goal: kraftwerk --help under 300 ms: ${ms(help)} ${help < 300 ? 'met' : 'NOT met'} (${ms(help - floor)} above starting Node)\n`,
  );
}

await main(bench, { needsSandbox: false });
