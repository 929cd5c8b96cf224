// Writes the golden CLI output (test/fixtures/cli-output/) from the built CLI of a checkout.
// The fixtures were captured at 6bd407c, before issue 14's refactor, and must not change by
// accident: refresh them only when a change of the CLI's output is intended, then read the diff.
//
//   node --import tsx scripts/capture-cli-output.ts            # from this checkout (npm run build first)
//   node --import tsx scripts/capture-cli-output.ts <checkout> # from another one, e.g. a worktree of an older commit
//
// test/integration/cli-output.test.ts compares against them with the same normalise function.
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { fixturesDir, outputCases, renderOutput, runCli } from '../test/helpers/cli-output.ts';

const here = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const source = path.resolve(process.argv[2] ?? here);
const out = path.join(here, fixturesDir);
mkdirSync(out, { recursive: true });
for (const f of readdirSync(out)) if (f.endsWith('.txt')) rmSync(path.join(out, f));
for (const c of outputCases(source)) {
  const r = runCli(source, c.args, c.cwd);
  const header = `args: ${c.args.join(' ')}\ncwd: ${c.cwd ?? '(an empty folder)'}\n`;
  writeFileSync(path.join(out, `${c.name}.txt`), header + renderOutput(r, source));
  process.stdout.write(`${c.name}: exit ${r.code}\n`);
}
