import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { hostname } from 'node:os';
import { acquireLockCommand, deadLocalHolder, describeHolder, LOCK_DIR, newLockInfo, releaseLockCommand } from '../../core/lock.ts';

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
