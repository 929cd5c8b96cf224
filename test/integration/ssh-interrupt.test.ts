/**
 * Interruptible commands (ExecOptions.interruptible) against a real OpenSSH
 * sshd on 127.0.0.1: stopped by an abort, by a silence timeout, by a failing
 * `whileTrue` test, or by the connection going away, the command and every
 * process it started are gone from the server (this machine: the processes
 * are looked for here), also those it started as another user through runuser.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { asUser, raw, sh } from '../../core/shell/sh.ts';
import { CommandTimeoutError, type Remote } from '../../core/remote/remote.ts';
import { connectSsh } from '../../core/remote/ssh.ts';
import { sshdUnavailable, startSshd, type TestSshd } from '../helpers/sshd.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let sshd: TestSshd;
let work: string;

/** A sleep whose command line is unique to this test (so that it can be looked for). */
function marker(): string {
  return `${300 + Math.floor(Math.random() * 600)}.${process.pid}${Math.floor(Math.random() * 1000)}`;
}

/** PIDs of processes on this machine whose command line contains `sleep <m>`. */
function running(m: string): string[] {
  const r = spawnSync('pgrep', ['-f', `sleep ${m}`], { encoding: 'utf8' });
  return r.stdout.split('\n').filter(Boolean);
}

/** Wait (bounded) until `sleep <m>` runs on the server: the command really started. */
async function started(m: string): Promise<void> {
  for (let i = 0; i < 100 && running(m).length === 0; i++) await sleep(100);
  assert.ok(running(m).length > 0, `sleep ${m} started`);
}

/** Wait (bounded: the kill takes up to 5 s for TERM, then KILL) until no `sleep <m>` is left. */
async function gone(m: string): Promise<string[]> {
  for (let i = 0; i < 150 && running(m).length > 0; i++) await sleep(100);
  return running(m);
}

async function connect(): Promise<Remote> {
  const known = join(work, `known_hosts_${Math.random()}`);
  writeFileSync(known, `${sshd.knownHostsLine}\n`);
  return connectSsh(sshd.target({ knownHostsFiles: [known] }), { acceptNewHostKey: false });
}

describe('interruptible commands against a real sshd', { skip: sshdUnavailable() }, () => {
  let remote: Remote;
  before(async () => {
    sshd = await startSshd();
    work = mkdtempSync(join(tmpdir(), 'kw-interrupt-'));
    remote = await connect();
  });
  after(async () => {
    await remote?.close();
    await sshd?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('runs to its end like any command: output, exit code, end of input for a reader', async () => {
    const r = await remote.exec(sh`echo out; echo err >&2; cat; exit 3`, { interruptible: true, check: false });
    assert.deepEqual([r.code, r.stdout, r.stderr], [3, 'out\n', 'err\n']);
  });

  it('an abort kills it and what it started, also as another user (runuser), and exec rejects with the reason', async () => {
    const m = marker();
    const controller = new AbortController();
    const reason = new Error('stopped by the test');
    const cmd = asUser('nobody', raw(`cd / && sleep ${m}; echo after`));
    const pending = remote.exec(sh`echo begin; ${cmd}`, { interruptible: true, signal: controller.signal });
    await started(m);
    controller.abort(reason);
    await assert.rejects(pending, (err) => err === reason);
    assert.deepEqual(await gone(m), [], `nothing of the command is left (sleep ${m})`);
  });

  it('a silence timeout kills it and rejects naming the node, the limit and the command', async () => {
    const m = marker();
    const pending = remote.exec(raw(`sleep ${m}`), { interruptible: true, silenceMs: 1500 });
    await assert.rejects(pending, (err: unknown) => {
      assert.ok(err instanceof CommandTimeoutError, String(err));
      assert.match(err.message, new RegExp(`on ${sshd.target().name} timed out \\(printed nothing for 1\\.5 s\\).*sleep ${m.replace('.', '\\.')}`));
      return true;
    });
    assert.deepEqual(await gone(m), []);
  });

  it('output keeps a command under its silence timeout alive', async () => {
    // 3 s in all, longer than the limit; a line every 0.5 s leaves 1.5 s of slack for a loaded machine.
    const r = await remote.exec(raw('for i in 1 2 3 4 5 6; do echo $i; sleep 0.5; done'), { interruptible: true, silenceMs: 2000 });
    assert.equal(r.stdout, '1\n2\n3\n4\n5\n6\n');
  });

  it('a failing whileTrue test kills it on the server (the lock of a deploy whose connection died)', async () => {
    const m = marker();
    const flag = join(work, `held-${m}`);
    writeFileSync(flag, '');
    const pending = remote.exec(raw(`sleep ${m}`), { interruptible: true, check: false, whileTrue: sh`test -e ${flag}` });
    await started(m);
    rmSync(flag);
    const r = await pending;
    assert.notEqual(r.code, 0, 'it did not end on its own');
    assert.deepEqual(await gone(m), []);
  });

  it('a connection that goes (the CLI exits or is killed) takes the command with it', async () => {
    const m = marker();
    const other = await connect();
    const pending = other.exec(raw(`sleep ${m}`), { interruptible: true }).catch((e: unknown) => e);
    await started(m);
    await other.close();
    await pending;
    assert.deepEqual(await gone(m), []);
  });

  it('a command that is not interruptible keeps running when its connection goes (why the option exists)', async () => {
    const m = marker();
    const other = await connect();
    void other.exec(raw(`sleep ${m}`)).catch(() => undefined);
    await started(m);
    await other.close();
    await sleep(1000);
    const left = running(m);
    spawnSync('pkill', ['-f', `sleep ${m}`]);
    assert.ok(left.length > 0, 'sshd does not stop a plain command');
  });
});
