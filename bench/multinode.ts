/**
 * bench/multinode: how a deploy grows with the number of nodes. Groups of 1,
 * 2, 4 and 8 sandboxes (`nodes: { g2: [bench-m1, bench-m2], g4: …, g8: … }` in
 * a temp copy of examples/flask-hello), each beside the floor on the same
 * nodes at once (rsync + `sv hup` to every node in parallel), interleaved in
 * every run (1 node, its floor, 2 nodes, its floor, …); median of --runs
 * each, for no change and for one changed file. Goals: 4 nodes at most 1.3×
 * and 8 nodes at most 1.6× one node. Writes docs/bench-multinode.csv and
 * docs/bench-multinode.svg.
 * Run: npm run bench:multinode  (or node --import tsx bench/multinode.ts --runs 5)
 */
import { appendFile } from 'node:fs/promises';
import path from 'node:path';
import {
  type BenchSandbox,
  type ChartSeries,
  DOCS_DIR,
  Floor,
  benchArgs,
  copyExample,
  deployer,
  floorOnAll,
  main,
  median,
  ms,
  note,
  projectDomain,
  ratio,
  remoteCommands,
  setUpSandboxes,
  table,
  settle as settleSites,
  writeChart,
  writeCsv,
} from './lib.ts';

const EXAMPLE = 'flask-hello';
const SIZES = [1, 2, 4, 8];
const NODES = Array.from({ length: Math.max(...SIZES) }, (_, i) => `bench-m${i + 1}`);
/** The node or group name that deploys to the first `n` nodes. */
const targetOf = (n: number) => (n === 1 ? NODES[0]! : `g${n}`);
const GOALS: Record<number, number> = { 4: 1.3, 8: 1.6 };

interface Sample {
  ms: number;
  floorMs: number;
  commands: (number | undefined)[];
  logins: number;
}

async function bench(): Promise<void> {
  const args = benchArgs({ runs: 3 });
  const project = await copyExample(EXAMPLE);
  try {
    const domain = await projectDomain(project.dir);
    // Set up before the groups are added, so the set-up snapshot is the one bench/deploy uses.
    const sandboxes = await setUpSandboxes(NODES, project.dir, { keep: args.keep });
    const groups = SIZES.filter((n) => n > 1).map((n) => `  ${targetOf(n)}: [${NODES.slice(0, n).join(', ')}]`);
    await appendFile(path.join(project.dir, 'kraftwerk.yaml'), `\n# bench/multinode\nnodes:\n${groups.join('\n')}\n`);

    const logins = async (which: readonly BenchSandbox[]) => (await Promise.all(which.map((s) => s.logins()))).reduce((a, b) => a + b, 0);
    const settle = (which: readonly BenchSandbox[]) => settleSites(which, domain);
    const floors = sandboxes.map((s) => new Floor(s, project.dir, EXAMPLE));
    const run = deployer(project.dir);
    const deploy = async (n: number, label: string): Promise<Sample> => {
      const which = sandboxes.slice(0, n);
      const before = await logins(which);
      const r = await run(targetOf(n), label, { verbose: true });
      const commands = which.map((s) => remoteCommands(r.stdout, s.name));
      const loginCount = (await logins(which)) - before;
      await settle(which);
      const floorMs = await floorOnAll(floors.slice(0, n));
      await settle(which);
      return { ms: r.ms, floorMs, commands, logins: loginCount };
    };

    note(`first deploy to the group ${targetOf(NODES.length)}`);
    const first = await run(targetOf(NODES.length), 'first', { verbose: true, timeoutMs: 30 * 60_000 });
    await settle(sandboxes);
    for (const f of floors) await f.prepare();
    await floorOnAll(floors); // the floors' own first copy, not measured
    await settle(sandboxes);
    note(`first deploy: ${ms(first.ms)}`);

    const scenarios: { name: string; change: (i: number) => Promise<void> }[] = [
      { name: 'no change', change: async () => {} },
      { name: 'one file changed', change: (i) => appendFile(path.join(project.dir, 'app.py'), `# bench: multinode change ${i}\n`) },
    ];
    const rows: (string | number)[][] = [];
    const csv: (string | number)[][] = [];
    const goalLines: string[] = [];
    const chart: ChartSeries[] = [];
    for (const scenario of scenarios) {
      const samples = new Map<number, Sample[]>(SIZES.map((n) => [n, []]));
      for (let i = 1; i <= args.runs; i++) {
        for (const n of SIZES) {
          await scenario.change(i * 100 + n);
          samples.get(n)!.push(await deploy(n, scenario.name));
        }
        note(`${scenario.name} ${i}/${args.runs}: ${SIZES.map((n) => `${n} node(s) ${ms(samples.get(n)!.at(-1)!.ms)} (floor ${ms(samples.get(n)!.at(-1)!.floorMs)})`).join(', ')}`);
      }
      const one = median(samples.get(1)!.map((s) => s.ms));
      const kPoints: [number, number][] = [];
      const fPoints: [number, number][] = [];
      for (const n of SIZES) {
        const s = samples.get(n)!;
        const k = median(s.map((x) => x.ms));
        const f = median(s.map((x) => x.floorMs));
        kPoints.push([n, k]);
        fPoints.push([n, f]);
        const cmds = [...new Set(s.flatMap((x) => x.commands.map((c) => c ?? '?')))].join('/');
        rows.push([scenario.name, n, ms(k), ms(f), ratio(k, f), ratio(k, one), cmds, Math.max(...s.map((x) => x.logins))]);
        csv.push([scenario.name, n, Math.round(k), Math.round(f), args.runs]);
        const limit = GOALS[n];
        if (limit) goalLines.push(`  ${scenario.name}: ${n} nodes ≤ ${limit}× one node: ${(k / one).toFixed(2)}× ${k / one <= limit ? 'met' : 'NOT met'}`);
      }
      chart.push({ name: `kraftwerk, ${scenario.name}`, points: kPoints }, { name: `floor, ${scenario.name}`, points: fPoints, dashed: true });
    }
    process.stdout.write(
      `bench/multinode: examples/${EXAMPLE} to groups of ${SIZES.join(', ')} sandboxes, median of ${args.runs} runs each (first deploy to ${NODES.length}: ${ms(first.ms)})\n\n` +
        `${table(['scenario', 'nodes', 'kraftwerk', 'floor', '/ floor', '/ 1 node', 'cmds/node', 'ssh logins'], rows)}\n` +
        'floor = rsync of the tree + `ssh sv hup`, to every node of the group at once\n\n' +
        `goals:\n${goalLines.join('\n')}\n`,
    );
    await writeCsv(path.join(DOCS_DIR, 'bench-multinode.csv'), ['scenario', 'nodes', 'kraftwerk_ms', 'floor_ms', 'runs'], csv);
    await writeChart(path.join(DOCS_DIR, 'bench-multinode.svg'), {
      title: 'Deploy time against nodes (median)',
      xLabel: 'nodes deployed at once',
      yLabel: 'ms',
      series: chart,
    });
  } finally {
    await project.cleanup();
  }
}

await main(bench);
