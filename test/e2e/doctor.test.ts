/**
 * Issue 17, `kraftwerk doctor`, on one real sandbox (from the set-up snapshot) with the
 * flask-hello example deployed: every check holds and doctor exits 0; --json says the
 * same as the lines; with the site's live web service stopped (sv down) doctor exits 1
 * with a line naming the site and the command that starts it again; a node whose host key
 * is not in known_hosts is a ✖ with the hint, and nothing is recorded there, not even
 * with --accept-new-host-key.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { formatDoctorLine, spaceFinding } from '../../core/cli/actions/doctor.ts';
import type { DoctorLevel, DoctorResult } from '../../core/engine/doctor.ts';
import { connectSsh } from '../../core/remote/ssh.ts';
import { sh } from '../../core/shell/sh.ts';
import { SANDBOX_ROOTS_DIR } from '../../tools/sandbox/commands.ts';
import { REPO_ROOT, runCli, sandboxSkip, withPreparedSandbox, type CliResult } from './harness.ts';
import { setupRecipe } from './safe-helpers.ts';

const NODE = 'doc-a';
const SITE = 'flask-hello';

const MARKS = { ok: '✔', warning: '!', error: '✖' } as const;
const printed = (r: CliResult) => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
const lines = (r: CliResult) => r.stdout.split('\n').filter(Boolean);

function project(t: TestContext): string {
  const parent = mkdtempSync(path.join(tmpdir(), 'kw-doctor-'));
  t.after(() => rmSync(parent, { recursive: true, force: true }));
  const dir = path.join(parent, SITE);
  mkdirSync(dir);
  cpSync(path.join(REPO_ROOT, 'examples', 'flask-hello'), dir, { recursive: true });
  return dir;
}

/** What doctor must say of the sandbox's disk: its root lies on this machine's filesystem, which may be fuller than the thresholds. */
function expectedDiskLevel(): DoctorLevel {
  const s = statfsSync(path.join(SANDBOX_ROOTS_DIR, NODE));
  const kib = (n: number) => (n * s.bsize) / 1024;
  return spaceFinding({ mount: '/', holds: [], totalKiB: kib(s.blocks), freeKiB: kib(s.bavail), inodes: s.files, freeInodes: s.ffree }).level;
}

describe('kraftwerk doctor on a set-up node', { skip: sandboxSkip() }, () => {
  it('holds on a healthy node, names a stopped site and an unknown host key', { timeout: 30 * 60_000 }, async (t) => {
    const dir = project(t);
    const cli = (args: string[]) => runCli(args, { cwd: dir, timeoutMs: 20 * 60_000 });
    await withPreparedSandbox(t, NODE, setupRecipe(), async (sandbox) => {
      // A node booted from the snapshot has its daemons stopped; setup-node (fast there) starts them.
      const setup = await cli(['setup-node', NODE]);
      assert.equal(setup.code, 0, `kraftwerk setup-node ${NODE}:\n${printed(setup)}`);
      const deploy = await cli(['deploy', NODE]);
      assert.equal(deploy.code, 0, `kraftwerk deploy ${NODE}:\n${printed(deploy)}`);

      await t.test('a healthy node: every line ✔, exit 0', async () => {
        const r = await cli(['doctor', NODE]);
        // This machine's own disk may be full enough for doctor to say so (the sandbox lives on it): that line must say what statfs says.
        const disk = expectedDiskLevel();
        assert.equal(r.code, disk === 'error' ? 1 : 0, printed(r));
        for (const line of lines(r)) {
          if (line.startsWith(`${MARKS[disk]} ${NODE}: disk: `)) continue;
          assert.match(line, /^✔ /, `every check holds:\n${r.stdout}`);
        }
        for (const check of ['ssh', 'rsync', 'node.js', 'ssh keys', 'known_hosts', 'login', 'setup-node', 'disk', 'clock', 'processes', 'services']) {
          assert.ok(lines(r).some((l) => l.includes(` ${check}: `)), `a line for ${check}:\n${r.stdout}`);
        }
        assert.match(r.stdout, new RegExp(`^✔ ${NODE}: services: ${SITE}: release \\d{8}T\\d{6}Z; .*running$`, 'm'), r.stdout);
      });

      await t.test('--json gives the same checks as the lines', async () => {
        const [text, json] = await Promise.all([cli(['doctor', NODE]), cli(['doctor', NODE, '--json'])]);
        assert.equal(json.code, expectedDiskLevel() === 'error' ? 1 : 0, printed(json));
        const results = JSON.parse(json.stdout) as DoctorResult[];
        for (const r of results) assert.deepEqual(Object.keys(r).sort(), ['check', 'detail', 'hint', 'level', 'node', 'ok', 'plugin']);
        // Same checks, same outcome (details such as the clock's offset may differ between two runs).
        const head = (l: string) => l.split(': ').slice(0, 2).join(': ');
        assert.deepEqual(results.map((r) => head(formatDoctorLine(r))), lines(text).map(head));
        assert.ok(results.every((r) => r.ok || r.check === 'disk'), JSON.stringify(results, null, 2));
      });

      await t.test("the site's web service stopped: exit 1, the line names the site and the fix", async () => {
        const remote = await connectSsh(sandbox.target, { acceptNewHostKey: false });
        try {
          // The live slot is the one without a `down` file.
          // -w: until it is down (uWSGI finishes its requests first); without it doctor may look while it still runs.
          await remote.exec(sh`for s in ${`/etc/service/kraftwerk-${SITE}`}@*; do [ -e "$s/down" ] || sv -w 30 down "$s"; done`);
          const r = await cli(['doctor', NODE]);
          assert.equal(r.code, 1, printed(r));
          const line = lines(r).find((l) => l.startsWith(`✖ ${NODE}: services: ${SITE}: `));
          assert.ok(line, `a ✖ line for ${SITE}:\n${r.stdout}`);
          assert.match(line, new RegExp(`kraftwerk-${SITE}@(blue|green) down .*→ Start it on the node as root: sv up /etc/service/kraftwerk-${SITE}@(blue|green)`), line);
          const json = JSON.parse((await cli(['doctor', NODE, '--json'])).stdout) as DoctorResult[];
          assert.ok(json.some((x) => x.check === 'services' && !x.ok && x.detail.startsWith(`${SITE}:`) && /sv up/.test(x.hint ?? '')), JSON.stringify(json, null, 2));
          await remote.exec(sh`for s in ${`/etc/service/kraftwerk-${SITE}`}@*; do [ -e "$s/down" ] || sv up "$s"; done`);
        } finally {
          await remote.close();
        }
      });

      await t.test('a node not in known_hosts: ✖ with the hint, nothing recorded', async () => {
        const file = sandbox.target.knownHostsFiles[0]!;
        const before = readFileSync(file, 'utf8');
        writeFileSync(file, '');
        try {
          const r = await cli(['--accept-new-host-key', 'doctor', NODE]);
          assert.equal(r.code, 1, printed(r));
          assert.match(r.stdout, new RegExp(`^✖ ${NODE}: known_hosts: .* is not in known_hosts .*→ Connect once .*--accept-new-host-key`, 'm'), r.stdout);
          assert.doesNotMatch(r.stdout, / login: /, 'doctor does not log in to a host it does not know');
          assert.equal(readFileSync(file, 'utf8'), '', 'doctor recorded no host key');
        } finally {
          // While the sandbox is still there (the outer test's after hooks run once it is gone).
          writeFileSync(file, before);
        }
      });
    });
  });
});
