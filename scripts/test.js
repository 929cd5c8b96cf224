#!/usr/bin/env node
// Runs test files one at a time in the order given (`node --test` sorts them,
// which would put test/e2e before test/unit): fast unit tests first, then
// integration tests, then the end-to-end suite on sandbox servers. Prints TAP,
// ending with node's `# pass N` / `# fail N` summary; exits 1 if a test failed.
// Run it with `node --import tsx` so the .ts test files load (children inherit it).
import { run } from 'node:test';
import { tap } from 'node:test/reporters';

const files = process.argv.slice(2);
if (!files.length) {
  process.stderr.write('usage: node --import tsx scripts/test.js <test files…>\n');
  process.exit(2);
}

// A ceiling per file, for a test that hangs: the slowest file on a fresh 2-CPU machine
// (the first e2e file: debootstrap of the sandbox root, a setup-node snapshot, then its
// deploys) takes about 10 minutes; unit and integration files take seconds. A test
// that cannot run must skip at once (a `skip` option, see aws-create-node.test.ts),
// never wait for this.
const stream = run({ files, concurrency: 1, timeout: 20 * 60 * 1000 });
stream.on('test:fail', (event) => {
  // A failing `todo` test is a known gap, reported as `# todo`, not a failure.
  if (!event.todo) process.exitCode = 1;
});
stream.compose(tap).pipe(process.stdout);
