import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { hostname } from 'node:os';
import { acquireLockCommand, deadLocalHolder, describeHolder, LOCK_DIR, newLockInfo, releaseLockCommand, STALE_SECONDS } from '../../core/lifecycle/lock.ts';

/** Run a lock command with LOCK_DIR moved into a temp folder. */
function run(text: string, dir: string) {
  const r = spawnSync('sh', ['-c', text.split(LOCK_DIR).join(dir)], { encoding: 'utf8' });
  return { code: r.status, out: r.stdout };
}

describe('deploy lock (commands run for real)', () => {
  it('lets one holder in and names it to the next', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'kw-lock-'));
    const a = newLockInfo('deploy');
    const b = newLockInfo('deploy');
    assert.equal(run(acquireLockCommand('site', a).text, dir).code, 0);
    const second = run(acquireLockCommand('site', b).text, dir);
    assert.equal(second.code, 3);
    const held = second.out.split('\n').find((l) => l.startsWith('held '))!;
    assert.match(describeHolder(held.slice(5)), new RegExp(`${a.who}@${a.host} \\(deploy, pid ${a.pid}`));
    // Someone else's release does not remove it; the holder's does.
    run(releaseLockCommand('site', b.token).text, dir);
    assert.equal(run(acquireLockCommand('site', b).text, dir).code, 3);
    run(releaseLockCommand('site', a.token).text, dir);
    assert.equal(run(acquireLockCommand('site', b).text, dir).code, 0);
  });

  it('takes over a lock whose holder stopped heart-beating', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'kw-lock-'));
    const a = newLockInfo('deploy');
    run(acquireLockCommand('site', a).text, dir);
    const old = Date.now() / 1000 - 120;
    utimesSync(path.join(dir, 'site', 'info'), old, old);
    const r = run(acquireLockCommand('site', newLockInfo('deploy')).text, dir);
    assert.equal(r.code, 0);
    assert.match(r.out, /^stale .*"token":"[0-9a-f]+"/m);
    assert.match(execFileSync('cat', [path.join(dir, 'site', 'info')]).toString(), /"command":"deploy"/);
  });

  it('takes over at once a lock whose holder is named, and only that holder\'s', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'kw-lock-'));
    const gone = newLockInfo('deploy');
    run(acquireLockCommand('site', gone).text, dir);
    // Another holder's token names nobody here: the fresh lock stays.
    assert.equal(run(acquireLockCommand('site', newLockInfo('deploy'), 30, undefined, 'feedfeedfeedfeed').text, dir).code, 3);
    const r = run(acquireLockCommand('site', newLockInfo('deploy'), 30, undefined, gone.token).text, dir);
    assert.equal(r.code, 0);
    assert.match(r.out, new RegExp(`^stale .*"token":"${gone.token}"`, 'm'));
  });
});

describe('deploy lock: racing waiters (real /bin/sh processes)', () => {
  /**
   * `racers` waiters start together, each as its own /bin/sh, against one lock
   * dir; returns how many printed `acquired`. The lock is stale (untouched for
   * two minutes) or held by a gone holder (`deadToken`), so each may try a takeover.
   */
  function race(dir: string, racers: number, options: { deadToken?: string } = {}): number {
    const holder = newLockInfo('deploy');
    run(acquireLockCommand('site', holder).text, dir);
    if (!options.deadToken) {
      const old = Date.now() / 1000 - 120;
      utimesSync(path.join(dir, 'site', 'info'), old, old);
    }
    const scripts = Array.from({ length: racers }, (_, i) => {
      const file = path.join(dir, `racer-${i}.sh`);
      const token = options.deadToken ? holder.token : undefined;
      writeFileSync(file, acquireLockCommand('site', newLockInfo('deploy'), STALE_SECONDS, undefined, token).text.split(LOCK_DIR).join(dir));
      return file;
    });
    const all = scripts.map((f, i) => `/bin/sh ${f} > ${dir}/out-${i} 2>&1 &`).join('\n');
    spawnSync('/bin/sh', ['-c', `${all}\nwait`]);
    let winners = 0;
    for (let i = 0; i < racers; i++) {
      winners += readFileSync(path.join(dir, `out-${i}`), 'utf8').split('\n').filter((l) => l === 'acquired').length;
    }
    rmSync(path.join(dir, 'site'), { recursive: true, force: true });
    return winners;
  }

  it('a stale lock is taken over by exactly one of many waiters (300 races)', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'kw-lock-race-'));
    const counts = Array.from({ length: 300 }, () => race(dir, 4));
    const wrong = counts.map((n, i) => ({ i, n })).filter((r) => r.n !== 1);
    assert.deepEqual(wrong, [], `races without exactly one winner (race: winners): ${wrong.map((r) => `${r.i}: ${r.n}`).join(', ')}`);
  });

  it('a lock of a gone holder is taken over by exactly one of many waiters (50 races)', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'kw-lock-race-'));
    const counts = Array.from({ length: 50 }, () => race(dir, 4, { deadToken: 'yes' }));
    assert.deepEqual(counts.filter((n) => n !== 1), []);
  });
});

describe('deploy lock: a holder on this machine', () => {
  it('is gone when its process no longer exists, alive while it runs, and never another machine\'s', () => {
    const exited = spawnSync('true');
    const info = (pid: number, host = hostname()) => JSON.stringify({ ...newLockInfo('deploy'), pid, host, token: 'abcd' });
    assert.equal(deadLocalHolder(info(exited.pid!)), 'abcd');
    assert.equal(deadLocalHolder(info(process.ppid)), undefined, 'a running process');
    assert.equal(deadLocalHolder(info(exited.pid!, 'elsewhere.example')), undefined, 'a pid on another machine says nothing');
    assert.equal(deadLocalHolder('not json'), undefined);
  });
});

describe('deploy lock: staleness and the transport', () => {
  it('a lock goes stale only well after a dead connection is noticed, and after its holder counts it as lost', async () => {
    const { KEEPALIVE_COUNT_MAX, KEEPALIVE_INTERVAL_MS } = await import('../../core/remote/ssh.ts');
    const { LOST_AFTER_MS, HEARTBEAT_MS } = await import('../../core/lifecycle/lock.ts');
    const deadPeerMs = KEEPALIVE_INTERVAL_MS * (KEEPALIVE_COUNT_MAX + 1);
    assert.ok(deadPeerMs <= 45_000, `a dead connection is noticed within 45 s (${deadPeerMs} ms)`);
    assert.ok(STALE_SECONDS * 1000 >= 2 * deadPeerMs, `stale after ${STALE_SECONDS} s, at least twice ${deadPeerMs} ms`);
    assert.ok(LOST_AFTER_MS < STALE_SECONDS * 1000 && LOST_AFTER_MS > deadPeerMs && LOST_AFTER_MS > 4 * HEARTBEAT_MS);
  });
});

describe('deploy lock: a heartbeat that finds the lock taken over', () => {
  it('counts the lock as lost, says so once, and the held test fails on the node', async () => {
    const { DeployLock, HEARTBEAT_MS } = await import('../../core/lifecycle/lock.ts');
    const dir = mkdtempSync(path.join(tmpdir(), 'kw-lock-hb-'));
    // Runs the lock's commands here, with LOCK_DIR moved into the temp folder.
    const remote = {
      dryRun: false,
      commandCount: 0,
      target: { name: 'local', host: 'localhost', port: 22, user: 'root', identityFiles: [], knownHostsFiles: [] },
      async exec(cmd: { text: string }) {
        const r = spawnSync('sh', ['-c', cmd.text.split(LOCK_DIR).join(dir)], { encoding: 'utf8' });
        return { code: r.status, stdout: r.stdout, stderr: r.stderr };
      },
      async syncFiles() {
        return [];
      },
      async rsync() {
        return undefined;
      },
      async close() {},
    };
    const { lock } = await DeployLock.acquire(remote, 'site', { command: 'deploy', waitMs: 0, node: 'local' });
    const held = () => run(lock.heldCommand().text, dir).code;
    assert.equal(held(), 0, 'the held test passes while the lock is ours and fresh');
    const lost: string[] = [];
    lock.onLost = (e) => lost.push(e.message);
    // Another deploy takes it over (as after a stale takeover): its token in the info file.
    writeFileSync(path.join(dir, 'site', 'info'), `${JSON.stringify(newLockInfo('deploy'))}\n`);
    assert.notEqual(held(), 0, 'the held test fails once another token holds the lock');
    for (let i = 0; i < 40 && !lost.length; i++) await new Promise((r) => setTimeout(r, HEARTBEAT_MS / 10));
    assert.equal(lost.length, 1, 'onLost was called once');
    assert.match(lost[0]!, /deploy lock of site on local was lost: it holds another deploy's token/);
    assert.ok(lock.lost);
    await lock.release();
    assert.ok(readFileSync(path.join(dir, 'site', 'info'), 'utf8').includes('"token"'), "releasing a lost lock leaves the other deploy's lock");
  });
});
