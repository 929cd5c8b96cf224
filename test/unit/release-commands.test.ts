import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { configSchema } from '../helpers/config.ts';
import { parseProbe } from '../../core/lifecycle/probe.ts';
import { acquireLockCommand, LOCK_DIR, newLockInfo } from '../../core/lifecycle/lock.ts';
import { finishReleaseCommand, RECORD_FAILED_EXIT } from '../../core/lifecycle/release-record.ts';
import { healthCheckCommand } from '../../core/lifecycle/healthcheck.ts';
import { LOCK_LOST_EXIT, switchCommand, SWITCHED_MARKER } from '../../core/lifecycle/switch.ts';
import { createSite, type Site } from '../../core/config/site.ts';

function siteIn(root: string, extra: Record<string, unknown> = {}): Site {
  const site = createSite(configSchema.parse({ domain: 'example.com', ...extra }), { configFile: '', sourceDir: root, name: 'demo' });
  // Point the layout at a temp folder so the real commands can run here.
  const p = site.paths;
  for (const k of Object.keys(p) as (keyof typeof p)[]) p[k] = p[k].replace('/srv/demo', root);
  return site;
}

describe('release commands (run for real in a temp folder)', () => {
  it('switches current atomically to the new release', () => {
    const root = mkdtempSync(path.join(tmpdir(), 'kw-rel-'));
    const site = siteIn(root);
    mkdirSync(path.join(root, 'releases/A'), { recursive: true });
    mkdirSync(path.join(root, 'releases/B'), { recursive: true });
    execFileSync('sh', ['-c', switchCommand(site, 'A').text]);
    assert.equal(readlinkSync(path.join(root, 'current')), 'releases/A');
    execFileSync('sh', ['-c', switchCommand(site, 'B').text]);
    assert.equal(readlinkSync(path.join(root, 'current')), 'releases/B');
    assert.ok(!existsSync(path.join(root, 'current.new')));
  });

  it('a switch whose rename fails exits non-zero, says so, and leaves current and the live slot alone', () => {
    const root = mkdtempSync(path.join(tmpdir(), 'kw-rel-'));
    const site = siteIn(root);
    mkdirSync(path.join(root, 'releases/A'), { recursive: true });
    mkdirSync(path.join(root, 'releases/B'), { recursive: true });
    execFileSync('sh', ['-c', switchCommand(site, 'A').text]);
    // Something in the way of the new link: a non-empty folder where the script makes it.
    mkdirSync(path.join(root, 'current.new/junk'), { recursive: true });
    const r = spawnSync('sh', ['-c', switchCommand(site, 'B').text], { encoding: 'utf8' });
    assert.notEqual(r.status, 0, 'the failed switch exits non-zero');
    assert.match(r.stderr, /could not point .*current at releases\/B/);
    assert.doesNotMatch(r.stdout, new RegExp(SWITCHED_MARKER), 'it does not claim to have switched');
    assert.equal(readlinkSync(path.join(root, 'current')), 'releases/A');
  });

  it('a switch refuses, changing nothing, when the deploy lock holds another token', () => {
    const root = mkdtempSync(path.join(tmpdir(), 'kw-rel-'));
    const locks = mkdtempSync(path.join(tmpdir(), 'kw-locks-'));
    const site = siteIn(root);
    mkdirSync(path.join(root, 'releases/A'), { recursive: true });
    mkdirSync(path.join(root, 'releases/B'), { recursive: true });
    execFileSync('sh', ['-c', switchCommand(site, 'A').text]);
    const holder = newLockInfo('deploy');
    execFileSync('sh', ['-c', acquireLockCommand(site.name, holder).text.split(LOCK_DIR).join(locks)]);
    const run = (token: string) => spawnSync('sh', ['-c', switchCommand(site, 'B', token).text.split(LOCK_DIR).join(locks)], { encoding: 'utf8' });
    const refused = run('0123456789abcdef');
    assert.equal(refused.status, LOCK_LOST_EXIT);
    assert.match(refused.stderr, /no longer this command's/);
    assert.equal(readlinkSync(path.join(root, 'current')), 'releases/A');
    assert.equal(run(holder.token).status, 0);
    assert.equal(readlinkSync(path.join(root, 'current')), 'releases/B');
  });

  it('a release record that cannot be written is reported (exit RECORD_FAILED_EXIT), the old record kept', () => {
    const root = mkdtempSync(path.join(tmpdir(), 'kw-rel-'));
    const site = siteIn(root);
    mkdirSync(path.join(root, 'releases/r1'), { recursive: true });
    // The state folder is a file: nothing can be written in it.
    writeFileSync(path.join(root, '.kraftwerk'), 'not a folder');
    const r = spawnSync('sh', ['-c', finishReleaseCommand(site, { id: 'r1', status: 'live' }, undefined).text], { encoding: 'utf8' });
    assert.equal(r.status, RECORD_FAILED_EXIT);
    assert.match(r.stderr, /could not write the release record/);
  });

  it('keeps keep_releases good releases, removes failed ones, never the live or previous one', () => {
    const root = mkdtempSync(path.join(tmpdir(), 'kw-rel-'));
    const site = siteIn(root, { keep_releases: 3 });
    mkdirSync(path.join(root, '.kraftwerk/releases'), { recursive: true });
    for (const id of ['r1', 'r2', 'r3', 'r3failed', 'r4', 'r5']) {
      mkdirSync(path.join(root, 'releases', id), { recursive: true });
      if (id !== 'r3failed' && id !== 'r5') {
        writeFileSync(path.join(root, '.kraftwerk/releases', `${id}.json`), JSON.stringify({ id, status: 'live' }));
      }
    }
    // r5 goes live; r1 was live before it (e.g. after a rollback): both stay, plus one more good one.
    execFileSync('sh', ['-c', finishReleaseCommand(site, { id: 'r5', status: 'live' }, 'r1').text]);
    assert.deepEqual(readdirSync(path.join(root, 'releases')).sort(), ['r1', 'r4', 'r5']);
    assert.ok(existsSync(path.join(root, '.kraftwerk/releases/r5.json')));
    assert.ok(!existsSync(path.join(root, '.kraftwerk/releases/r2.json')));
  });

  it('health check asks nginx with the canonical domain as Host header', () => {
    const site = siteIn('/tmp', { healthcheck: { path: '/health', status: 200, retries: 2 } });
    const cmd = healthCheckCommand(site).text;
    assert.match(cmd, /-H 'Host: example\.com' http:\/\/127\.0\.0\.1\/health/);
    assert.match(cmd, /case "\$code" in 200\)/);
    const https = healthCheckCommand(site, { https: true }).text;
    assert.match(https, /--resolve example\.com:443:127\.0\.0\.1 -k https:\/\/example\.com\/health/);
  });
});

describe('probe', () => {
  it('reads node facts, other sites and the environment', () => {
    const site = siteIn('/tmp');
    const facts = parseProbe(
      "setup=1\npython=3.11.2\ncurrent=20261125T170102Z\nsite=demo example.com \nsite=other other.com www.other.com \n---env---\nA='x y'\n---envlocal---\nSECRET=s3\n",
      site,
    );
    assert.equal(facts.setUp, true);
    assert.equal(facts.pythonVersion, '3.11.2');
    assert.equal(facts.currentRelease, '20261125T170102Z');
    assert.deepEqual(facts.otherSites, { other: ['other.com', 'www.other.com'] });
    assert.deepEqual(facts.env, { A: 'x y', SECRET: 's3' });
    assert.deepEqual(facts.envLocal, { SECRET: 's3' });
  });
});

describe('release ids', () => {
  it('sort by time and move past a live release of the same second', async () => {
    const { newReleaseId, nextReleaseId } = await import('../../core/lifecycle/release-record.ts');
    assert.equal(newReleaseId(new Date('2026-11-25T17:01:02.345Z')), '20261125T170102Z');
    assert.equal(nextReleaseId('20991231T235959Z'), '21000101T000000Z');
    // A live release from the past: the next id is simply now.
    assert.ok(nextReleaseId('20200101T000000Z') >= newReleaseId());
  });
});
