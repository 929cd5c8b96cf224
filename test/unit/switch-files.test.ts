/**
 * Files that go live with the switch (RemoteFile.atSwitch): a deploy records
 * them with its other files but writes them only in the switch command, after
 * the rename of `current`; a rollback brings them back the same way. Run for
 * real in a temp folder through a Remote that runs sh here.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { configSchema } from '../helpers/config.ts';
import { type DeployContext, RemoteFileSet } from '../../core/engine/context.ts';
import { execSwitch, switchCommand } from '../../core/lifecycle/switch.ts';
import { restoreFiles, writeFiles } from '../../core/lifecycle/release-files.ts';
import type { Script } from '../../core/shell/sh.ts';
import { createSite, type Site } from '../../core/config/site.ts';
import type { ExecOptions, ExecResult, Remote, RemoteFile } from '../../core/remote/remote.ts';
import { buildSyncFilesCommand, parseSyncFilesOutput } from '../../core/remote/syncfiles.ts';

/** Runs every command with sh on this machine; remembers the command texts. */
class LocalRemote implements Remote {
  readonly dryRun = false;
  readonly target = { name: 'here', host: 'here', port: 22, user: 'root', identityFiles: [], knownHostsFiles: [] };
  readonly texts: string[] = [];
  get commandCount(): number {
    return this.texts.length;
  }
  async exec(cmd: Script, options: ExecOptions = {}): Promise<ExecResult> {
    this.texts.push(cmd.text);
    const r = spawnSync('sh', ['-c', cmd.text], { input: options.stdin ?? '', encoding: 'utf8' });
    if (r.status !== 0 && options.check !== false) throw new Error(`exit ${r.status}: ${r.stderr}`);
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  }
  async rsync(): Promise<undefined> {
    throw new Error('no rsync in this test');
  }
  async syncFiles(files: RemoteFile[]): Promise<string[]> {
    const { command, stdin } = buildSyncFilesCommand(files);
    return parseSyncFilesOutput((await this.exec(command, { stdin })).stdout);
  }
  async close(): Promise<void> {}
}

function setup(t: { after: (fn: () => void) => void }): { root: string; site: Site; ctx: (id: string) => DeployContext; remote: LocalRemote } {
  const root = mkdtempSync(path.join(tmpdir(), 'kw-switch-files-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const site = createSite(configSchema.parse({ domain: 'example.com' }), { configFile: '', sourceDir: root, name: 'demo' });
  const p = site.paths;
  for (const k of Object.keys(p) as (keyof typeof p)[]) p[k] = p[k].replace('/srv/demo', root);
  for (const id of ['A', 'B']) mkdirSync(path.join(root, 'releases', id), { recursive: true });
  mkdirSync(path.join(p.state, 'releases'), { recursive: true });
  const remote = new LocalRemote();
  const ctx = (id: string) =>
    ({ site, node: 'here', remote, state: new Map(), files: new RemoteFileSet(), facts: { envLocal: {} }, release: { id, path: `${p.releases}/${id}` } }) as unknown as DeployContext;
  return { root, site, ctx, remote };
}

describe('files written at the switch (atSwitch)', () => {
  it('are recorded with the release but written only by the switch, after current moved', async (t) => {
    const { root, site, ctx } = setup(t);
    const cron = path.join(root, 'cron.d', 'kraftwerk-demo');
    const plain = path.join(root, 'plain.conf');
    const a = ctx('A');
    a.files.add({ path: plain, content: 'plain A\n' }).add({ path: cron, content: 'cron A\n', atSwitch: true });
    assert.deepEqual(await writeFiles(a), [plain]);
    assert.ok(!existsSync(cron), 'not written with the other files');
    const recorded = JSON.parse(readFileSync(path.join(site.paths.state, 'releases', 'A.files.json'), 'utf8')) as RemoteFile[];
    assert.deepEqual(recorded.map((f) => [f.path, f.atSwitch ?? false]), [[plain, false], [cron, true]]);

    // The files part runs after the switch in the same command: a failing switch (no such release) would stop before it.
    await execSwitch(a, switchCommand(site, 'A'));
    assert.equal(readlinkSync(site.paths.current), 'releases/A');
    assert.equal(readFileSync(cron, 'utf8'), 'cron A\n');
    assert.ok(a.files.changed.has(cron));
  });

  it('a rollback restores the others at once and leaves its atSwitch files to the switch', async (t) => {
    const { root, site, ctx, remote } = setup(t);
    const cron = path.join(root, 'cron-file');
    const plain = path.join(root, 'plain.conf');
    for (const id of ['A', 'B']) {
      const c = ctx(id);
      c.files.add({ path: plain, content: `plain ${id}\n` }).add({ path: cron, content: `cron ${id}\n`, atSwitch: true });
      await writeFiles(c);
      await execSwitch(c, switchCommand(site, id));
    }
    assert.equal(readFileSync(cron, 'utf8'), 'cron B\n');

    const back = ctx('A');
    assert.deepEqual((await restoreFiles(back, 'A')).changed, [plain]);
    assert.equal(readFileSync(cron, 'utf8'), 'cron B\n', 'still the live release’s until the switch');
    assert.equal(back.files.all.find((f) => f.path === cron)?.content, 'cron A\n');
    await execSwitch(back, switchCommand(site, 'A'));
    assert.equal(readFileSync(cron, 'utf8'), 'cron A\n');
    assert.match(remote.texts.at(-1)!, /mv -T [^\n]*current[^\n]*\n[\s\S]*\(\nset -e\n/, 'the files are written after the rename, in the same command');
  });

  it('a removal can wait for the switch too', async (t) => {
    const { root, site, ctx } = setup(t);
    const cron = path.join(root, 'cron-file');
    const a = ctx('A');
    a.files.add({ path: cron, content: 'cron A\n', atSwitch: true });
    await writeFiles(a);
    await execSwitch(a, switchCommand(site, 'A'));
    const b = ctx('B');
    b.files.remove(cron, { atSwitch: true });
    await writeFiles(b);
    assert.ok(existsSync(cron));
    await execSwitch(b, switchCommand(site, 'B'));
    assert.ok(!existsSync(cron));
    assert.ok(b.files.changed.has(cron));
  });
});
