/**
 * Node roles on two web nodes (issue 16): `roles:` in kraftwerk.yaml split a group; cron runs on
 * one node only; uploads (files) need a mount every web node shares, checked at deploy time; status
 * shows each node's roles and `run` goes to a web node. The "shared mount" is one folder of this
 * machine bind-mounted into both sandboxes (as NFS would be); the wrong one, another folder.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { sandboxSkip } from './harness.ts';
import { deployOk, get, onNode, pageOf, printed, SafeProject, servedPage, SITE, withSetUpNodes } from './safe-helpers.ts';
import type { SandboxInfo } from '../../tools/sandbox/lib.ts';

const W1 = 'rol-web1';
const W2 = 'rol-web2';
const MOUNT = '/mnt/shared';

/** Bind-mount `hostDir` at MOUNT inside the sandbox's own mount namespace (where its processes see it). */
function bindInto(sandbox: SandboxInfo, hostDir: string): void {
  const target = path.join(sandbox.record.root, MOUNT);
  mkdirSync(target, { recursive: true });
  const pid = String(sandbox.record.pid);
  execFileSync('nsenter', ['-t', pid, '-m', '--', 'sh', '-c', `umount ${target} 2>/dev/null; mount --bind ${hostDir} ${target}`]);
}

describe('a group split by role: two web nodes', { skip: sandboxSkip() }, () => {
  it('cron on one node, shared uploads checked, roles in status', { timeout: 60 * 60_000 }, async (t) => {
    const shared = mkdtempSync(path.join(tmpdir(), 'kw-shared-'));
    const other = mkdtempSync(path.join(tmpdir(), 'kw-other-'));
    // As an NFS export's root usually is: root's, and others pass through (the site and nginx must reach their folder).
    for (const dir of [shared, other]) chmodSync(dir, 0o755);
    t.after(() => {
      rmSync(shared, { recursive: true, force: true });
      rmSync(other, { recursive: true, force: true });
    });
    const project = SafeProject.create(t)
      .setVersion('A')
      .editConfig((doc) => {
        doc.set('nodes', { web1: { host: W1, roles: ['web', 'worker'] }, web2: { host: W2, roles: ['web'] }, production: ['web1', 'web2'] });
        doc.set('default_node', 'production');
        doc.set('services', ['files']);
        doc.set('cron', [{ name: 'tick', schedule: '*/5 * * * *', command: 'true' }]);
      });
    await withSetUpNodes(t, project, [W1, W2], async ([s1, s2]) => {
      const address: Record<string, string> = { [W1]: s1!.address, [W2]: s2!.address };

      await t.test('files on two web nodes without a shared mount: refused, nothing made on either node', async () => {
        const r = await project.cli(['deploy']);
        assert.notEqual(r.code, 0, printed(r));
        assert.match(r.stderr, /files\.shared_path/, printed(r));
        assert.match(r.stderr, /web1, web2/, printed(r));
        for (const n of [W1, W2]) assert.equal((await onNode(n, `ls /srv/${SITE}/releases 2>/dev/null | wc -l`)).trim(), '0', `no release on ${n}`);
      });

      await t.test('with one mount on both: deploys, and a file uploaded on web1 is served by web2', async () => {
        bindInto(s1!, shared);
        bindInto(s2!, shared);
        project.editConfig((doc) => doc.set('files', { shared_path: MOUNT }));
        await deployOk(project, 'production');
        for (const n of [W1, W2]) assert.equal(await servedPage(address[n]!), pageOf('A'), `${n} serves A`);
        // The site writes its uploads as its own user, as the app would.
        await onNode(W1, `su -s /bin/sh kw-${SITE} -c 'echo shared-by-web1 > ${MOUNT}/${SITE}/hello.txt'`);
        const answer = await get(address[W2]!, '/uploads/hello.txt');
        assert.equal(answer.status, 200, JSON.stringify(answer));
        assert.equal(answer.body?.trim(), 'shared-by-web1');
        // The site has the same uid and web gid on both nodes: its files on the mount are its own on each.
        const ids = async (n: string) => (await onNode(n, `id -u kw-${SITE}; getent group kwn-${SITE} | cut -d: -f3`)).trim();
        assert.equal(await ids(W1), await ids(W2));
        // UPLOADS_PATH names the shared folder.
        const env = await onNode(W2, `cat /srv/${SITE}/current/.kraftwerk/environ/UPLOADS_PATH`);
        assert.equal(env.trim(), `${MOUNT}/${SITE}`);
      });

      await t.test('cron jobs run on exactly one node: the worker node', async () => {
        const has = async (n: string) => (await onNode(n, `[ -f /etc/cron.d/kraftwerk-${SITE} ] && echo yes || echo no`)).trim();
        assert.equal(await has(W1), 'yes');
        assert.equal(await has(W2), 'no');
      });

      await t.test('status shows each node with its roles; run goes to the first web node', async () => {
        const r = await project.cli(['status']);
        assert.equal(r.code, 0, printed(r));
        assert.match(r.stdout, /^node web1 \[cron, web, worker\]/m, r.stdout);
        assert.match(r.stdout, /^node web2 \[web\]/m, r.stdout);
        const run = await project.cli(['run', '--', 'cat', '/proc/sys/kernel/hostname']);
        assert.equal(run.code, 0, printed(run));
        assert.equal(run.stdout.trim(), W1);
      });

      await t.test('web2 with another file system there: the deploy stops before the switch, both keep serving', async () => {
        bindInto(s2!, other);
        const r = await project.setVersion('B').cli(['deploy']);
        assert.notEqual(r.code, 0, printed(r));
        assert.match(`${r.stdout}\n${r.stderr}`, /is not the file system web1 has there/, printed(r));
        for (const n of [W1, W2]) assert.equal(await servedPage(address[n]!), pageOf('A'), `${n} still serves A`);
      });
    });
  });
});
