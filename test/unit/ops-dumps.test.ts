import assert from 'node:assert/strict';
import { soloTopology } from '../../core/engine/topology.ts';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { configSchema } from '../helpers/config.ts';
import {
  checkDumpId,
  listDumpsCommand,
  newDumpId,
  parseDumpList,
  rotateBackupsCommand,
} from '../../core/lifecycle/dumps.ts';
import { recordDumpCommands, renderBackupScript } from '../../plugins/backups/script.ts';
import { createHooks, interceptHooks } from '../../core/engine/hooks.ts';
import { sh } from '../../core/shell/sh.ts';
import { createSite, type Site } from '../../core/config/site.ts';
import { verifyUploadsCommand } from '../../plugins/files/index.ts';

function siteIn(root: string, extra: Record<string, unknown> = {}): Site {
  const site = createSite(configSchema.parse({ domain: 'example.com', ...extra }), { configFile: '', sourceDir: root, name: 'demo' });
  const p = site.paths;
  for (const k of Object.keys(p) as (keyof typeof p)[]) p[k] = p[k].replace('/srv/demo', root);
  return site;
}

function backupFolder(site: Site, id: string, kind: string): void {
  const dir = path.join(site.paths.backups, id);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'manifest.json'), `${JSON.stringify({ kind, site: 'demo', plugins: ['postgres'] })}\n`);
}

const base = (site: Site) => ({
  site,
  node: 'test',
  topology: soloTopology('test'),
  options: { dryRun: false, verbose: false, quiet: true },
  log: { info() {}, warn() {} },
  state: new Map(),
});

describe('dump ids', () => {
  it('are sortable UTC times, with an optional suffix', () => {
    assert.equal(newDumpId(new Date('2026-11-25T17:01:02.345Z')), '20261125T170102Z');
    assert.equal(newDumpId(new Date('2026-11-25T17:01:02Z'), 'pre-load'), '20261125T170102Z-pre-load');
  });
  it('refuse anything that could leave the backups folder', () => {
    for (const bad of ['../etc', '20261125T170102Z/../../x', '', 'latest', '20261125T170102Z;rm']) {
      assert.throws(() => checkDumpId(bad), /not a dump id/);
    }
    assert.equal(checkDumpId('20261125T170102Z-sync'), '20261125T170102Z-sync');
  });
});

describe('listing and rotation (run for real in a temp folder)', () => {
  it('lists dumps oldest first with kind, size and contents; skips folders without a manifest', () => {
    const root = mkdtempSync(path.join(tmpdir(), 'kw-dumps-'));
    const site = siteIn(root);
    backupFolder(site, '20261125T170000Z', 'backup');
    backupFolder(site, '20261124T170000Z-pre-load', 'pre-load');
    mkdirSync(path.join(site.paths.backups, '.partial-x'), { recursive: true });
    mkdirSync(path.join(site.paths.backups, 'pre-20261125T100000Z'), { recursive: true });
    const out = execFileSync('sh', ['-c', listDumpsCommand(site).text], { encoding: 'utf8' });
    const dumps = parseDumpList(out);
    assert.deepEqual(dumps.map((d) => [d.id, d.kind, d.plugins]), [
      ['20261124T170000Z-pre-load', 'pre-load', ['postgres']],
      ['20261125T170000Z', 'backup', ['postgres']],
    ]);
    assert.equal(dumps[1]!.time, '2026-11-25T17:00:00Z');
    assert.ok(dumps[0]!.sizeKb >= 0);
  });

  it('lists nothing (and does not fail) when there is no backups folder', () => {
    const site = siteIn(path.join(tmpdir(), 'kw-none-here'));
    assert.equal(execFileSync('sh', ['-c', listDumpsCommand(site).text], { encoding: 'utf8' }), '');
  });

  it('keeps the newest `keep` scheduled backups and every other kind of dump', () => {
    const root = mkdtempSync(path.join(tmpdir(), 'kw-rotate-'));
    const site = siteIn(root);
    for (const id of ['20261120T000000Z', '20261121T000000Z', '20261122T000000Z', '20261123T000000Z']) backupFolder(site, id, 'backup');
    backupFolder(site, '20261119T000000Z', 'dump');
    backupFolder(site, '20261119T000001Z-pre-load', 'pre-load');
    const out = execFileSync('sh', ['-c', rotateBackupsCommand(site, 2).text], { encoding: 'utf8' });
    assert.deepEqual(out.trim().split('\n').sort(), ['removed 20261120T000000Z', 'removed 20261121T000000Z']);
    assert.deepEqual(readdirSync(site.paths.backups).sort(), [
      '20261119T000000Z',
      '20261119T000001Z-pre-load',
      '20261122T000000Z',
      '20261123T000000Z',
    ]);
  });
});

describe('scheduled backup script', () => {
  it("runs every plugin's dump commands into a timestamped folder, writes the manifest and rotates", async () => {
    const root = mkdtempSync(path.join(tmpdir(), 'kw-backup-'));
    const site = siteIn(root, { backups: { schedule: '@daily', keep: 2 } });
    const hooks = createHooks();
    interceptHooks(hooks);
    hooks.dump.tap('db', (_ctx, tasks) => {
      tasks.add({ title: 'dump db', run: (ctx) => ctx.remote.exec(sh`printf 'rows %s\\n' 3 > ${`${ctx.dir}/db.dump`}`).then(() => undefined) });
    });
    hooks.dump.tap('files', (_ctx, tasks) => {
      tasks.add({ title: 'archive', run: (ctx) => ctx.remote.exec(sh`cd ${ctx.dir} && echo "it's here" > uploads.txt`).then(() => undefined) });
    });
    const { commands, plugins } = await recordDumpCommands(hooks, base(site), `${site.paths.backups}/.scheduled`);
    assert.deepEqual(plugins, ['db', 'files']);
    const script = renderBackupScript(site, commands, plugins, 2);
    // Two older scheduled backups: after this run only the newest two remain.
    backupFolder(site, '20200101T000000Z', 'backup');
    backupFolder(site, '20200102T000000Z', 'backup');
    const file = path.join(root, 'backup.sh');
    writeFileSync(file, script);
    const out = execFileSync('sh', [file], { encoding: 'utf8' });
    assert.match(out, /removed 20200101T000000Z/);
    assert.match(out, /backup \d{8}T\d{6}Z done/);
    const folders = readdirSync(site.paths.backups).sort();
    assert.equal(folders.length, 2);
    assert.equal(folders[0], '20200102T000000Z');
    const made = path.join(site.paths.backups, folders[1]!);
    assert.equal(readFileSync(path.join(made, 'db.dump'), 'utf8'), 'rows 3\n');
    assert.equal(readFileSync(path.join(made, 'uploads.txt'), 'utf8'), "it's here\n");
    assert.deepEqual(JSON.parse(readFileSync(path.join(made, 'manifest.json'), 'utf8')), {
      kind: 'backup',
      site: 'demo',
      plugins: ['db', 'files'],
      by: 'cron',
    });
    assert.ok(!existsSync(path.join(site.paths.backups, '.scheduled')));
  });

  it('stops at the first failing dump command and leaves no half-written backup', async () => {
    const root = mkdtempSync(path.join(tmpdir(), 'kw-backup-fail-'));
    const site = siteIn(root, { backups: { schedule: '@daily', keep: 2 } });
    const hooks = createHooks();
    hooks.dump.tap('db', (_ctx, tasks) => {
      tasks.add({ title: 'dump db', run: (ctx) => ctx.remote.exec(sh`false`).then(() => undefined) });
    });
    const { commands, plugins } = await recordDumpCommands(hooks, base(site), `${site.paths.backups}/.scheduled`);
    const file = path.join(root, 'backup.sh');
    writeFileSync(file, renderBackupScript(site, commands, plugins, 2));
    assert.throws(() => execFileSync('sh', [file], { stdio: 'pipe' }));
    assert.deepEqual(readdirSync(site.paths.backups).filter((f) => !f.startsWith('.')), []);
  });

  it('with verify, checks the new backup before it is kept: a bad one is not renamed and rotates no good backup out', async () => {
    const root = mkdtempSync(path.join(tmpdir(), 'kw-backup-verify-'));
    const site = siteIn(root, { backups: { schedule: '@daily', keep: 1, verify: true } });
    const hooks = createHooks();
    interceptHooks(hooks);
    hooks.dump.tap('db', (_ctx, tasks) => {
      tasks.add({ title: 'dump db', run: (ctx) => ctx.remote.exec(sh`cat ${path.join(root, 'data')} > ${`${ctx.dir}/db.dump`}`).then(() => undefined) });
    });
    // The check of a plugin whose data this backup does not hold is left out.
    for (const plugin of ['db', 'redis']) {
      hooks.verify.tap(plugin, (_ctx, tasks) => {
        tasks.add({ title: 'check', run: (ctx) => ctx.remote.exec(sh`grep -q good ${`${ctx.dir}/${plugin}.dump`}`, { check: false }).then(() => undefined) });
      });
    }
    const dir = `${site.paths.backups}/.scheduled`;
    const { commands, plugins } = await recordDumpCommands(hooks, base(site), dir);
    const verify = await recordDumpCommands(hooks, base(site), dir, 'verify', plugins);
    assert.deepEqual(verify.plugins, ['db']);
    const file = path.join(root, 'backup.sh');
    writeFileSync(file, renderBackupScript(site, commands, plugins, 1, verify.commands));
    backupFolder(site, '20200101T000000Z', 'backup');

    writeFileSync(path.join(root, 'data'), 'corrupt\n');
    const bad = spawnSync('sh', [file], { encoding: 'utf8' });
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /backup \d{8}T\d{6}Z FAILED its check/);
    assert.deepEqual(readdirSync(site.paths.backups).sort(), ['.scheduled', '20200101T000000Z'], 'the old backup stays');

    writeFileSync(path.join(root, 'data'), 'good\n');
    const good = spawnSync('sh', [file], { encoding: 'utf8' });
    assert.equal(good.status, 0, good.stderr);
    assert.match(good.stdout, /backup \d{8}T\d{6}Z verified\n.*removed 20200101T000000Z/s);
    assert.equal(readdirSync(site.paths.backups).length, 1);
  });

  it('refuses dump tasks that send input or write files: the script could not do the same', async () => {
    const site = siteIn(path.join(tmpdir(), 'kw-unused'));
    const hooks = createHooks();
    hooks.dump.tap('odd', (_ctx, tasks) => {
      tasks.add({ title: 'stdin', run: (ctx) => ctx.remote.exec(sh`cat > x`, { stdin: 'data' }).then(() => undefined) });
    });
    await assert.rejects(recordDumpCommands(hooks, base(site), '/tmp/x'), /cannot send input/);
  });
});

describe('verify of the uploads archive (real tar)', () => {
  const scratchFolders = () => readdirSync('/var/tmp').filter((f) => f.startsWith('kraftwerk-verify.')).length;

  it('extracts a good archive into a scratch folder, counts it and removes it; a truncated one fails, also removed', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'kw-verify-'));
    const uploads = path.join(dir, 'uploads');
    mkdirSync(path.join(uploads, 'sub'), { recursive: true });
    writeFileSync(path.join(uploads, 'a.txt'), 'hello');
    writeFileSync(path.join(uploads, 'sub', 'b.bin'), randomBytes(64 * 1024));
    execFileSync('tar', ['-czf', path.join(dir, 'uploads.tar.gz'), '-C', uploads, '.']);
    const before = scratchFolders();

    const good = spawnSync('sh', ['-c', verifyUploadsCommand(dir).text], { encoding: 'utf8' });
    assert.equal(good.status, 0, good.stderr);
    assert.match(good.stdout.trim(), /^2 \d+$/);
    assert.equal(scratchFolders(), before);

    const archive = path.join(dir, 'uploads.tar.gz');
    truncateSync(archive, Math.floor(statSync(archive).size / 2));
    const bad = spawnSync('sh', ['-c', verifyUploadsCommand(dir).text], { encoding: 'utf8' });
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /uploads\.tar\.gz does not (list|extract)/);
    assert.equal(scratchFolders(), before);

    rmSync(archive);
    const none = spawnSync('sh', ['-c', verifyUploadsCommand(dir).text], { encoding: 'utf8' });
    assert.equal(none.status, 1);
    assert.match(none.stderr, /the backup has no uploads\.tar\.gz/);
  });
});
