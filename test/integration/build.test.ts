import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { it } from 'node:test';
import { repoRoot } from '../helpers/cli.ts';

function* jsFiles(dir: string): Generator<string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) yield* jsFiles(p);
    else if (entry.name.endsWith('.js')) yield p;
  }
}

// tsc rewrites relative `.ts` specifiers to `.js`, but not every form (TypeScript 6.0
// misses dynamic imports inside `export default <expression>`); such a file fails only at run time.
it('the built CLI imports no .ts files', () => {
  const offenders: string[] = [];
  for (const file of jsFiles(path.join(repoRoot, 'dist'))) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:import\(|from\s+)(['"])(\.{1,2}\/[^'"]+\.ts)\1/g)) {
      offenders.push(`${path.relative(repoRoot, file)}: ${m[2]}`);
    }
  }
  assert.deepEqual(offenders, []);
});
