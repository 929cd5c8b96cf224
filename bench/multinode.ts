/**
 * bench/multinode: a deploy to a group of 4 sandboxes at once
 * (`nodes: { all: [bench-m1, …, bench-m4] }` in a temp copy of
 * examples/flask-hello) against the same deploy to one of them alone, in the
 * same run, interleaved; median of --runs each, for no change and for one
 * changed file. Goal: the group takes at most 1.3× the time of one node.
 * Run: npm run bench:multinode  (or node --import tsx bench/multinode.ts --runs 5)
 */
import { appendFile } from 'node:fs/promises';
import path from 'node:path';
import {
  BenchFailure,
  type BenchSandbox,
  afterSecondOf,
  benchArgs,
  copyExample,
  kraftwerk,
  main,
  median,
  ms,
  note,
  projectDomain,
  ratio,
  remoteCommands,
  setUpSandboxes,
  table,
  waitForSite,
} from './lib.ts';

const EXAMPLE = 'flask-hello';
const NODES = ['bench-m1', 'bench-m2', 'bench-m3', 'bench-m4'];
const GROUP = 'all';

interface Sample {
  ms: number;
  commands: (number | undefined)[];
  logins: number;
}

async function bench(): Promise<void> {
  const args = benchArgs({ runs: 5 });
  const project = await copyExample(EXAMPLE);
  try {
    const domain = await projectDomain(project.dir);
    // Set up before the group is added, so the set-up snapshot is the one bench/deploy uses.
    const sandboxes = await setUpSandboxes(NODES, project.dir, { keep: args.keep });
    await appendFile(path.join(project.dir, 'kraftwerk.yaml'), `\n# bench/multinode\nnodes:\n  ${GROUP}: [${NODES.join(', ')}]\n`);

    const logins = async (which: BenchSandbox[]) => (await Promise.all(which.map((s) => s.logins()))).reduce((a, b) => a + b, 0);
    const settle = async () => {
      for (const s of sandboxes) {
        if (!(await waitForSite(s.address, domain, '/health'))) throw new BenchFailure(`the site does not answer on ${s.name} (${s.address})`);
      }
    };
    let lastEnd: number | undefined;
    const deploy = async (node: string, which: BenchSandbox[], label: string): Promise<Sample> => {
      await afterSecondOf(lastEnd);
      const before = await logins(which);
      const r = await kraftwerk(['--verbose', 'deploy', node], { cwd: project.dir });
      lastEnd = Date.now();
      if (r.code !== 0) {
        throw new BenchFailure(`deploy ${node} (${label}) failed (exit ${r.code}):\n${`${r.stdout}\n${r.stderr}`.trim().split('\n').slice(-25).join('\n')}`);
      }
      const sample = { ms: r.ms, commands: which.map((s) => remoteCommands(r.stdout, s.name)), logins: (await logins(which)) - before };
      await settle();
      return sample;
    };

    note(`first deploy to the group ${GROUP}`);
    const first = await deploy(GROUP, sandboxes, 'first');
    note(`first deploy: ${ms(first.ms)}`);

    const scenarios: { name: string; change: (i: number) => Promise<void> }[] = [
      { name: 'no change', change: async () => {} },
      { name: 'one file changed', change: (i) => appendFile(path.join(project.dir, 'app.py'), `# bench: multinode change ${i}\n`) },
    ];
    const rows: (string | number)[][] = [];
    const ratios = new Map<string, number>();
    for (const scenario of scenarios) {
      const single: Sample[] = [];
      const group: Sample[] = [];
      for (let i = 1; i <= args.runs; i++) {
        await scenario.change(2 * i);
        single.push(await deploy(NODES[0]!, [sandboxes[0]!], scenario.name));
        await scenario.change(2 * i + 1);
        group.push(await deploy(GROUP, sandboxes, scenario.name));
        note(`${scenario.name} ${i}/${args.runs}: one node ${ms(single.at(-1)!.ms)}, ${NODES.length} nodes ${ms(group.at(-1)!.ms)}`);
      }
      const one = median(single.map((s) => s.ms));
      const all = median(group.map((s) => s.ms));
      ratios.set(scenario.name, all / one);
      const cmds = (ss: Sample[]) => [...new Set(ss.flatMap((s) => s.commands.map((c) => c ?? '?')))].join('/');
      rows.push([scenario.name, ms(one), ms(all), ratio(all, one), cmds(single), cmds(group), Math.max(...single.map((s) => s.logins)), Math.max(...group.map((s) => s.logins))]);
    }
    const worst = Math.max(...ratios.values());
    process.stdout.write(
      `bench/multinode: examples/${EXAMPLE}, 1 node vs a group of ${NODES.length} sandboxes, median of ${args.runs} runs each (first group deploy: ${ms(first.ms)})\n\n` +
        `${table(['scenario', '1 node', `${NODES.length} nodes`, 'ratio', 'cmds/node (1)', `cmds/node (${NODES.length})`, 'logins (1)', `logins (${NODES.length})`], rows)}\n\n` +
        `goal: ${NODES.length} nodes at most 1.3× one node: worst ${worst.toFixed(2)}× ${worst <= 1.3 ? 'met' : 'NOT met'}\n`,
    );
  } finally {
    await project.cleanup();
  }
}

await main(bench);
