/**
 * Day-to-day operations end to end, on two sandbox servers (ops-a, ops-b) set
 * up with the real CLI: status and logs of a deployed site, `run` with the
 * site's environment and exit code, `env set` reaching the app and masked in
 * the output, a worker process restarted on deploy, a cron job that runs and
 * never overlaps itself, backup / list / load round trips, sync-services from
 * one node to the other, and destroy of one site leaving another serving.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { quote, raw } from '../../core/shell/sh.ts';
import type { Remote } from '../../core/remote/remote.ts';
import { connectSsh } from '../../core/remote/ssh.ts';
import type { SandboxInfo } from '../../tools/sandbox/lib.ts';
import { hasSnapshot, sandboxTarget, saveSnapshot } from '../../tools/sandbox/lib.ts';
import { REPO_ROOT, runCli, sandboxSkip, withSandbox, type CliResult } from './harness.ts';
import { setupSnapshotKey } from './safe-helpers.ts';

const FIXTURE = path.join(REPO_ROOT, 'test', 'fixtures', 'apps', 'ops-site');
const A = 'ops-a';
const B = 'ops-b';
const SECRET = 'hunter2-s3cr3t-value';

function get(address: string, host: string, urlPath: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: address, port: 80, path: urlPath, headers: { host }, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${urlPath} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A line of /etc/cron.d (five schedule fields, the user, the command) as cron runs it: as that user, through sh, from a folder it can read (cron: its home). */
function asCron(line: string): string {
  const fields = line.split(' ');
  return `(cd / && runuser -u ${fields[5]} -- sh -c ${quote(fields.slice(6).join(' ').replace(/\\%/g, '%'))})`;
}

function project(t: TestContext, files: Record<string, string> = {}): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'kw-ops-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  cpSync(FIXTURE, dir, { recursive: true });
  for (const [name, content] of Object.entries(files)) writeFileSync(path.join(dir, name), content);
  return dir;
}

/**
 * Sandboxes `names`, each set up with the real `kraftwerk setup-node`, removed
 * afterwards. They start from the snapshot of a set-up node that the
 * safe-deploy suite keys by the setup code (saved here when it is missing).
 */
async function withSetUpSandboxes<T>(t: TestContext, cwd: string, names: string[], fn: (s: SandboxInfo[]) => Promise<T>, made: SandboxInfo[] = []): Promise<T> {
  const [name, ...rest] = names;
  if (!name) return fn(made);
  const key = setupSnapshotKey();
  const fromSnapshot = (await hasSnapshot(key)) ? key : undefined;
  return withSandbox(
    t,
    name,
    async (sandbox) => {
      const r = await runCli(['setup-node', name], { cwd, timeoutMs: 30 * 60_000 });
      assert.equal(r.code, 0, `setup-node ${name} failed:\n${r.stdout}\n${r.stderr}`);
      if (!fromSnapshot && !(await hasSnapshot(key))) {
        t.diagnostic(`saving snapshot ${key}`);
        await saveSnapshot(name, key).catch((e: Error) => t.diagnostic(`no snapshot: ${e.message}`));
      }
      return withSetUpSandboxes(t, cwd, rest, fn, [...made, sandbox]);
    },
    fromSnapshot ? { fromSnapshot } : {},
  );
}

const OTHER_CONFIG = `package: other
domain: other.test
wsgi: app:application
healthcheck:
  path: /health
environ:
  OTHER: "1"
`;

describe('operations: status, logs, run, env, workers, cron, backups, dump/load, sync-services, destroy', { skip: sandboxSkip() }, () => {
  it('works on two sandboxes', { timeout: 60 * 60_000 }, async (t: TestContext) => {
    const dir = project(t);
    const otherDir = project(t, { 'kraftwerk.yaml': OTHER_CONFIG });
    const cli = async (args: string[], options: { cwd?: string; ok?: boolean } = {}): Promise<CliResult> => {
      const r = await runCli(args, { cwd: options.cwd ?? dir, timeoutMs: 20 * 60_000 });
      t.diagnostic(`kraftwerk ${args.join(' ')} → exit ${r.code}`);
      if (options.ok !== false) assert.equal(r.code, 0, `kraftwerk ${args.join(' ')} failed:\n${r.stdout}\n${r.stderr}`);
      return r;
    };
    await withSetUpSandboxes(t, dir, [A, B], async ([a, b]) => {
      const remotes: Record<string, Remote> = {};
      for (const name of [A, B]) {
        const target = await sandboxTarget(name);
        assert.ok(target, `sandbox ${name} is up`);
        remotes[name] = await connectSsh(target, { acceptNewHostKey: false });
      }
      t.after(() => Promise.all(Object.values(remotes).map((r) => r.close())));
      const on = async (name: string, script: string) => (await remotes[name]!.exec(raw(script))).stdout;
      const page = (node: 'a' | 'b', urlPath: string, host = 'ops.test') => get((node === 'a' ? a : b)!.address, host, urlPath);

      await cli(['deploy', A]);
      await cli(['deploy', B]);
      await cli(['deploy', A], { cwd: otherDir });
      const first = (await page('a', '/')).body;
      assert.match(first, /^ops site, release \d{8}T\d{6}Z\n$/);

      await t.test('status shows the live release and running services', async () => {
        const r = await cli(['status', A, '--json']);
        const [node] = JSON.parse(r.stdout) as { sites: { name: string; release?: string; services: { service: string; state: string; release?: string }[]; disk: { releases: number } }[]; system: Record<string, string> }[];
        const ops = node!.sites.find((s) => s.name === 'ops')!;
        assert.equal(ops.release, first.trim().split(' ').pop());
        // The web slot that runs the live release, the spare one down, the worker.
        assert.deepEqual(ops.services.map((s) => [s.service, s.state, s.release]).sort(), [
          ['kraftwerk-ops-worker', 'run', undefined],
          ['kraftwerk-ops@blue', 'run', ops.release],
          ['kraftwerk-ops@green', 'down', undefined],
        ]);
        assert.ok(ops.disk.releases > 0);
        assert.ok(node!.sites.some((s) => s.name === 'other'), 'the other site of the node is listed too');
        assert.equal(node!.system.nginx, 'running');
        assert.equal(node!.system.postgresql, 'running');
        const text = await cli(['status', A]);
        assert.match(text.stdout, /site ops: release \d{8}T\d{6}Z/);
        assert.match(text.stdout, /kraftwerk-ops-worker +run \(pid \d+\)/);
        assert.match(text.stdout, new RegExp(`kraftwerk-ops@blue +run \\(pid \\d+\\) for .*; release ${ops.release} \\(live\\)`));
      });

      await t.test('logs show the worker and web logs', async () => {
        const worker = await cli(['logs', A, '--process', 'worker', '-n', '5']);
        assert.match(worker.stdout, /worker started in \/srv\/ops\/releases\/\d{8}T\d{6}Z as \d+ with SITE=ops/);
        const all = await cli(['logs', A, '-n', '20']);
        assert.match(all.stdout, /==> worker\/current <==/);
        // -f follows until stopped; the tail on the server ends with the connection.
        const follow = spawn(process.execPath, [path.join(REPO_ROOT, 'bin', 'kraftwerk.js'), 'logs', A, '--process', 'worker', '-n', '2', '-f'], {
          cwd: dir,
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let followed = '';
        follow.stdout.setEncoding('utf8').on('data', (c: string) => (followed += c));
        for (let i = 0; i < 100 && !/worker started/.test(followed); i++) await sleep(200);
        assert.match(followed, /worker started/);
        assert.doesNotMatch(followed, /\r/);
        follow.kill('SIGTERM');
        await new Promise((r) => follow.once('close', r));
        let tails = '';
        for (let i = 0; i < 25; i++) {
          tails = await on(A, 'pgrep -ax tail || true');
          if (!tails.trim()) break;
          await sleep(200);
        }
        assert.equal(tails.trim(), '', 'no tail left running on the server');
        const missing = await cli(['logs', A, '--process', 'nope'], { ok: false });
        assert.equal(missing.code, 1);
        assert.match(missing.stderr, /no log .*nope/);
      });

      await t.test('run executes a command as the site in the live release, exit code passed through', async () => {
        const r = await cli(['run', A, '--', 'python3', '-c', 'import os, getpass; print(getpass.getuser(), os.getcwd(), os.environ["DATABASE_URL"])']);
        assert.match(r.stdout, /^kw-ops \/srv\/ops\/releases\/\d{8}T\d{6}Z postgresql:\/\/\/ops\?host=/);
        const code = await cli(['run', A, '--', 'exit 7'], { ok: false });
        assert.equal(code.code, 7);
        const psql = await cli(['run', A, '--', 'psql -X -At "$DATABASE_URL" -c "select current_user"']);
        assert.equal(psql.stdout.trim(), 'kw-ops');
        // -i on a terminal (script(1) gives the CLI one): the command gets a terminal on the server.
        const cliPath = path.join(REPO_ROOT, 'bin', 'kraftwerk.js');
        const tty = spawnSync('script', ['-qec', `${process.execPath} ${cliPath} run -i ${A} -- tty`, '/dev/null'], { cwd: dir, encoding: 'utf8', timeout: 120_000 });
        if (tty.error) t.diagnostic(`script(1) not available: ${tty.error.message}`);
        else assert.match(tty.stdout, /\/dev\/pts\/\d+/, `run -i: ${tty.stdout}${tty.stderr}`);
      });

      await t.test('env set reaches the app, masked in every output; unset removes it', async () => {
        const set = await cli(['env', 'set', A, `GREETING=${SECRET}`, 'MODE=blue']);
        assert.doesNotMatch(set.stdout + set.stderr, new RegExp(SECRET));
        assert.equal((await page('a', '/env/GREETING')).body, `${SECRET}\n`);
        assert.equal((await page('a', '/env/MODE')).body, 'blue\n');
        const shown = await cli(['env', A]);
        assert.match(shown.stdout, /^GREETING=\*\*\* +# kraftwerk env set$/m);
        assert.doesNotMatch(shown.stdout, new RegExp(SECRET));
        assert.match((await cli(['env', A, '--show'])).stdout, new RegExp(`^GREETING=${SECRET} `, 'm'));
        // The worker was restarted with the new environment, the value survives a deploy.
        assert.match(await on(A, 'cat /srv/ops/shared/env.local'), /MODE=blue/);
        await cli(['env', 'unset', '--node', A, 'MODE']);
        assert.equal((await page('a', '/env/MODE')).status, 404);
        assert.equal((await page('b', '/env/GREETING')).status, 404, 'the other node is untouched');
      });

      await t.test('the worker restarts on deploy, and goes when dropped from the config', async () => {
        const before = await on(A, 'sv status /etc/service/kraftwerk-ops-worker');
        await cli(['deploy', A]);
        const release = (await page('a', '/')).body.trim().split(' ').pop()!;
        assert.notEqual(`${release}\n`, first.split(' ').pop(), 'a new release is live');
        const log = await cli(['logs', A, '--process', 'worker', '-n', '50']);
        assert.match(log.stdout, new RegExp(`worker started in /srv/ops/releases/${release} `), 'the worker runs the new release');
        const after = await on(A, 'sv status /etc/service/kraftwerk-ops-worker');
        assert.notEqual(/\(pid (\d+)\)/.exec(after)?.[1], /\(pid (\d+)\)/.exec(before)?.[1], 'a new worker process');
        assert.equal((await page('a', '/env/GREETING')).body, `${SECRET}\n`, 'env set survives a deploy');

        // Dropped from the config: the next deploy stops and removes its service.
        const { readFileSync } = await import('node:fs');
        const config = path.join(dir, 'kraftwerk.yaml');
        const original = readFileSync(config, 'utf8');
        writeFileSync(config, original.replace(/^processes:\n  worker: .*\n/m, ''));
        await cli(['deploy', A]);
        assert.equal(await on(A, 'ls -d /etc/sv/kraftwerk-ops-worker /etc/service/kraftwerk-ops-worker 2>/dev/null; pgrep -f "^python3 worker.py"; true'), '');
        writeFileSync(config, original);
        await cli(['deploy', A]);
        assert.match(await on(A, 'sv status /etc/service/kraftwerk-ops-worker'), /^run: /);
      });

      await t.test('the cron job runs from cron, and a second run while one is running does not start', async () => {
        assert.match(await on(A, 'cat /etc/cron.d/kraftwerk-ops'), /flock -n/);
        // Run the job's line as cron would, twice at once: the second finds the lock taken.
        const command = asCron((await on(A, 'grep "cron-tick" /etc/cron.d/kraftwerk-ops')).trim());
        // Away from the minute: cron starts the job then, and it holds the lock for its 5 s.
        await on(A, 'while s=$(date +%S); [ "$s" -gt 40 ] || [ "$s" -lt 15 ]; do sleep 1; done');
        await on(A, `rm -f /srv/ops/shared/uploads/tick.log; (${command}) & sleep 1; (${command}); wait`);
        const manual = await on(A, 'cat /srv/ops/shared/uploads/tick.log');
        assert.equal(manual.match(/^start /gm)?.length, 1, `one run only:\n${manual}`);
        assert.equal(manual.match(/^end /gm)?.length, 1);
        // cron itself runs it within a minute.
        await on(A, 'rm -f /srv/ops/shared/uploads/tick.log');
        let seen = '';
        for (let i = 0; i < 50 && !/^end /m.test(seen); i++) {
          await sleep(2000);
          seen = await on(A, 'cat /srv/ops/shared/uploads/tick.log 2>/dev/null; true');
        }
        assert.match(seen, /^start \d+ \d+\nend /m, 'cron ran the job');
        assert.match((await cli(['logs', A, '--process', 'cron-tick'])).stdout, /tick done/);
      });

      const sql = (node: string, query: string) => cli(['run', node, '--', `psql -X -At -v ON_ERROR_STOP=1 "$DATABASE_URL" -c ${JSON.stringify(query).replace(/\$/g, '\\$')}`]);

      await t.test('backup, list, load round trip: a row and an uploaded file come back', async () => {
        await sql(A, 'create table notes (body text); insert into notes values ($$first note$$)');
        await cli(['run', A, '--', 'echo "an upload" > "$UPLOADS_PATH/hello.txt"']);
        const backup = await cli(['backup', A]);
        const id = /Backup (\d{8}T\d{6}Z)/.exec(backup.stdout)?.[1];
        assert.ok(id, backup.stdout);
        const list = await cli(['backups', A, '--json']);
        const [{ dumps }] = JSON.parse(list.stdout) as { dumps: { id: string; kind: string; plugins: string[] }[] }[];
        const listed = dumps.find((d) => d.id === id);
        assert.deepEqual(listed && [listed.kind, [...listed.plugins].sort()], ['backup', ['files', 'postgres']]);
        assert.match(await on(A, `ls /srv/ops/backups/${id}`), /manifest\.json/);

        await sql(A, 'delete from notes');
        await cli(['run', A, '--', 'rm "$UPLOADS_PATH/hello.txt"']);
        assert.equal((await page('a', '/uploads/hello.txt')).status, 404);

        const refused = await cli(['load', A, id!], { ok: false });
        assert.equal(refused.code, 2, 'no terminal and no --yes: not confirmed');
        await cli(['load', A, id!, '--yes']);
        assert.equal((await sql(A, 'select body from notes')).stdout.trim(), 'first note');
        assert.equal((await page('a', '/uploads/hello.txt')).body, 'an upload\n');
        const after = JSON.parse((await cli(['backups', A, '--json'])).stdout) as { dumps: { kind: string }[] }[];
        assert.ok(after[0]!.dumps.some((d) => d.kind === 'pre-load'), 'load took a dump of the data it replaced');

        const local = mkdtempSync(path.join(tmpdir(), 'kw-ops-dl-'));
        t.after(() => rmSync(local, { recursive: true, force: true }));
        await cli(['backup', A, id!, '--download', '--to', local]);
        const { readdirSync } = await import('node:fs');
        assert.ok(readdirSync(local).includes('manifest.json'));
        // The scheduled backup, run as cron runs it, twice: rotation keeps 2 (`keep: 2`).
        const scheduled = asCron((await on(A, 'grep "cron-backup" /etc/cron.d/kraftwerk-ops')).trim());
        await on(A, `${scheduled}; sleep 1.1; ${scheduled}`);
        const rotated = JSON.parse((await cli(['backups', A, '--json'])).stdout) as { dumps: { id: string; kind: string; plugins: string[] }[] }[];
        const kept = rotated[0]!.dumps.filter((d) => d.kind === 'backup');
        assert.equal(kept.length, 2, `two scheduled backups kept:\n${JSON.stringify(rotated)}`);
        assert.ok(!kept.some((d) => d.id === id), 'the oldest backup was rotated away');
        assert.deepEqual([...kept[1]!.plugins].sort(), ['files', 'postgres']);
      });

      await t.test('sync-services copies the row and the upload from one node to the other', async () => {
        await sql(B, 'create table notes (body text); insert into notes values ($$stage only$$)');
        await cli(['sync-services', A, B, '--yes']);
        assert.equal((await sql(B, 'select body from notes')).stdout.trim(), 'first note');
        assert.equal((await page('b', '/uploads/hello.txt')).body, 'an upload\n');
        const dumpsB = JSON.parse((await cli(['backups', B, '--json'])).stdout) as { dumps: { kind: string }[] }[];
        assert.ok(dumpsB[0]!.dumps.some((d) => d.kind === 'pre-load'), "the target's own data was dumped first");
        assert.equal((await page('a', '/env/GREETING')).body, `${SECRET}\n`, 'the source still serves');
      });

      await t.test('dump and load by id on one node', async () => {
        const dump = await cli(['dump', B]);
        const id = /Dump (\d{8}T\d{6}Z)/.exec(dump.stdout)?.[1];
        assert.ok(id);
        await sql(B, 'insert into notes values ($$after the dump$$)');
        await cli(['load', B, id!, '--yes', '--no-backup']);
        assert.equal((await sql(B, 'select count(*) from notes')).stdout.trim(), '1');
      });

      await t.test('destroy removes one site and leaves the other serving', async () => {
        const refused = await cli(['destroy', A], { ok: false });
        assert.equal(refused.code, 2);
        await cli(['destroy', A, '--yes']);
        const left = await on(
          A,
          'ls -d /srv/ops /etc/sv/kraftwerk-ops* /etc/service/kraftwerk-ops* /etc/cron.d/kraftwerk-ops /etc/nginx/sites-enabled/kraftwerk-ops* /etc/kraftwerk/sites/ops /var/log/kraftwerk/ops 2>/dev/null; id kw-ops 2>/dev/null; runuser -u postgres -- psql -At -c "select datname from pg_database where datname = \'ops\'"; runuser -u postgres -- psql -At -c "select rolname from pg_roles where rolname = \'kw-ops\'"; true',
        );
        assert.equal(left.trim(), '', `nothing of site ops is left:\n${left}`);
        assert.equal((await page('a', '/', 'other.test')).status, 200, 'the other site still serves');
        assert.equal((await page('b', '/uploads/hello.txt')).status, 200, 'and ops on ops-b is untouched');
        // nginx closes the connection for a name no site answers to.
        const gone = await page('a', '/', 'ops.test').then((r) => `HTTP ${r.status}: ${r.body}`, (e: Error) => e.message);
        assert.doesNotMatch(gone, /ops site/, 'ops is gone from ops-a');
      });
    });
  });
});
