/**
 * Sandbox servers end to end: the real CLI makes them, core's SSH transport
 * talks to them, apt works through the caching proxy, and `sandbox down`
 * leaves nothing behind.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { RemoteCommandError } from '../../core/errors.ts';
import { resolveTarget } from '../../core/remote/node.ts';
import { raw, sh } from '../../core/shell/sh.ts';
import { connectSsh } from '../../core/remote/ssh.ts';
import type { Remote, SshTarget } from '../../core/remote/remote.ts';
import sandboxPlugin from '../../tools/sandbox/index.ts';
import { removeSnapshot, saveSnapshot, sandboxDown, sandboxTarget, sandboxUp, type SandboxInfo } from '../../tools/sandbox/lib.ts';
import { PROXY_ADDRESS } from '../../tools/sandbox/naming.ts';
import { readState } from '../../tools/sandbox/state.ts';
import { REPO_ROOT, progressTo, runCli, sandboxLeftovers, sandboxSkip, withPreparedSandbox, withSandbox } from './harness.ts';

const A = 'e2e-sb-a';
const B = 'e2e-sb-b';
const FROM_SNAPSHOT = 'e2e-sb-snap';
const ALL = [A, B, FROM_SNAPSHOT];

async function targetOf(name: string): Promise<SshTarget> {
  const t = await sandboxTarget(name);
  assert.ok(t, `sandbox ${name} is recorded`);
  return t;
}

async function withRemote<T>(name: string, fn: (remote: Remote) => Promise<T>): Promise<T> {
  const remote = await connectSsh(await targetOf(name), { acceptNewHostKey: false });
  try {
    return await fn(remote);
  } finally {
    await remote.close();
  }
}

describe('sandbox servers', { skip: sandboxSkip() }, () => {
  before(async () => {
    for (const n of ALL) await sandboxDown(n);
  });
  after(async () => {
    for (const n of ALL) await sandboxDown(n);
  });

  it('kraftwerk sandbox up makes a host and prints its address', async () => {
    const r = await runCli(['sandbox', 'up', A]);
    assert.equal(r.code, 0, r.stderr);
    const target = await targetOf(A);
    assert.match(r.stdout, new RegExp(`sandbox ${A} is up at ${target.host.replaceAll('.', '\\.')}\\b`));
  });

  it('core transport logs in with host key checking and gets output and exit codes', async () => {
    const resolved = await resolveTarget(A, { plugins: [sandboxPlugin] });
    assert.deepEqual(resolved, await targetOf(A), 'the sandbox name resolves as a node');
    await withRemote(A, async (remote) => {
      assert.match((await remote.exec(sh`cat /etc/debian_version`)).stdout, /^12\.\d+\n$/);
      assert.equal((await remote.exec(raw('hostname'))).stdout.trim(), A);
      assert.equal((await remote.exec(raw('id -u'))).stdout.trim(), '0');
      const failed = await remote.exec(sh`sh -c ${'echo to-stderr >&2; exit 7'}`, { check: false });
      assert.equal(failed.code, 7);
      assert.equal(failed.stderr.trim(), 'to-stderr');
      await assert.rejects(remote.exec(raw('ls /does-not-exist')), RemoteCommandError);
      // runsvdir is PID 1 of the sandbox and supervises sshd.
      assert.match((await remote.exec(raw('cat /proc/1/cmdline | tr "\\0" " "'))).stdout, /^\/usr\/bin\/runsvdir -P \/etc\/service/);
    });
  });

  it('kraftwerk sandbox ssh prints the output and passes the exit code through', async () => {
    const ok = await runCli(['sandbox', 'ssh', A, '--', 'cat', '/etc/debian_version']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /^12\.\d+\n$/);
    const failed = await runCli(['sandbox', 'ssh', A, '--', 'sh', '-c', 'exit 3']);
    assert.equal(failed.code, 3, failed.stderr);
    const unknown = await runCli(['sandbox', 'ssh', 'no-such-sandbox', '--', 'true']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /no sandbox named no-such-sandbox/);
  });

  it('a second sandbox runs beside the first with its own address and reaches it', async () => {
    const r = await runCli(['sandbox', 'up', B]);
    assert.equal(r.code, 0, r.stderr);
    const a = await targetOf(A);
    const b = await targetOf(B);
    assert.notEqual(a.host, b.host);
    const probe = `import socket; s = socket.create_connection((${JSON.stringify(a.host)}, 22), 5); print(s.recv(64).decode().strip())`;
    const banner = await withRemote(B, (remote) => remote.exec(sh`python3 -c ${probe}`));
    assert.match(banner.stdout, /^SSH-2\.0-OpenSSH/);
    const list = await runCli(['sandbox', 'list']);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, new RegExp(`^${A}\\s+${a.host.replaceAll('.', '\\.')}\\s+up$`, 'm'));
    assert.match(list.stdout, new RegExp(`^${B}\\s+${b.host.replaceAll('.', '\\.')}\\s+up$`, 'm'));
  });

  it('apt-get install nginx works through the proxy, and a second sandbox gets the packages from its cache', async () => {
    const install = raw('apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nginx');
    await withRemote(B, async (remote) => {
      await remote.exec(install, { timeoutMs: 15 * 60_000 });
      assert.match((await remote.exec(raw('nginx -v 2>&1'))).stdout, /nginx version/);
      // The proxy forwards to the Debian archive only.
      const probe = `import urllib.request, urllib.error
try:
    urllib.request.urlopen("http://example.com/", timeout=10)
except urllib.error.HTTPError as e:
    print(e.code)`;
      const refused = await remote.exec(sh`env http_proxy=${`http://${PROXY_ADDRESS}:3142/`} python3 -c ${probe}`);
      assert.equal(refused.stdout.trim(), '403');
    });
    const proxy = (await readState()).proxy;
    assert.ok(proxy, 'the proxy is recorded');
    const logBefore = readFileSync(proxy.log, 'utf8').length;
    await withRemote(A, (remote) => remote.exec(install, { timeoutMs: 15 * 60_000 }));
    const log = readFileSync(proxy.log, 'utf8').slice(logBefore);
    assert.match(log, /HIT 200 \S+\/nginx-common_\S+\.deb/, 'the second install came from the cache');
    assert.doesNotMatch(log, /MISS 200 \S+\/nginx(-common)?_\S+\.deb/);
  });

  it('a snapshot brings back a set-up root under a new name, address and host keys', async (t) => {
    const key = `e2e-test-${process.pid}`;
    t.after(() => removeSnapshot(key));
    await withRemote(A, (remote) => remote.exec(raw('echo set-up > /root/snapshot-marker')));
    await saveSnapshot(A, key);
    assert.equal((await runCli(['sandbox', 'ssh', A, '--', 'true'])).code, 0, 'the snapshotted sandbox runs on');
    const up = await sandboxUp(FROM_SNAPSHOT, { fromSnapshot: key, onProgress: progressTo(t) });
    assert.notEqual(up.address, (await targetOf(A)).host);
    await withRemote(FROM_SNAPSHOT, async (remote) => {
      assert.equal((await remote.exec(raw('cat /root/snapshot-marker'))).stdout, 'set-up\n');
      assert.equal((await remote.exec(raw('hostname'))).stdout.trim(), FROM_SNAPSHOT);
      assert.match((await remote.exec(raw('nginx -v 2>&1'))).stdout, /nginx version/);
    });
    const hostKeys = async (name: string) =>
      readFileSync((await targetOf(name)).knownHostsFiles[0]!, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => l.split(' ').slice(1).join(' '));
    const fresh = await hostKeys(FROM_SNAPSHOT);
    assert.ok(fresh.length > 0);
    for (const k of fresh) assert.ok(!(await hostKeys(A)).includes(k), 'host keys are made anew');
  });

  it('kraftwerk sandbox down --all leaves no namespace, veth, mount, process or folder behind', async (t) => {
    const others = Object.keys((await readState()).sandboxes).filter((n) => !ALL.includes(n));
    if (others.length > 0) {
      t.skip(`other sandboxes exist on this machine (${others.join(', ')}); down --all would remove them`);
      return;
    }
    const proxyPid = (await readState()).proxy?.pid;
    const r = await runCli(['sandbox', 'down', '--all']);
    assert.equal(r.code, 0, r.stderr);
    for (const n of ALL) assert.deepEqual(await sandboxLeftovers(n), [], `nothing of ${n} is left`);
    const state = await readState();
    assert.deepEqual(Object.keys(state.sandboxes), []);
    assert.equal(state.proxy, undefined, 'the proxy stopped with the last sandbox');
    if (proxyPid) assert.ok(!existsSync(`/proc/${proxyPid}`) || /Z/.test(procState(proxyPid)), 'the proxy process is gone');
    const lo = spawnSync('ip', ['-4', '-o', 'addr', 'show', 'dev', 'lo'], { encoding: 'utf8' }).stdout;
    assert.ok(!lo.includes(PROXY_ADDRESS), 'the proxy address is removed from lo');
  });

  it('withPreparedSandbox prepares a snapshot once and starts later sandboxes from it', async (t) => {
    const key = `e2e-prepared-${process.pid}`;
    t.after(() => removeSnapshot(key));
    let prepared = 0;
    const recipe = {
      key,
      prepare: async (sandbox: SandboxInfo) => {
        prepared++;
        const remote = await connectSsh(sandbox.target, { acceptNewHostKey: false });
        try {
          await remote.exec(raw('echo prepared > /root/prepared'));
        } finally {
          await remote.close();
        }
      },
    };
    for (const name of ['e2e-sb-prep1', 'e2e-sb-prep2']) {
      const marker = await withPreparedSandbox(t, name, recipe, (sandbox) =>
        withRemote(sandbox.name, (remote) => remote.exec(raw('cat /root/prepared; hostname'))),
      );
      assert.equal(marker.stdout, `prepared\n${name}\n`);
      assert.deepEqual(await sandboxLeftovers(name), []);
    }
    assert.equal(prepared, 1, 'the second sandbox came from the snapshot');
  });

  it('withSandbox removes its sandbox when the test body fails', async (t) => {
    const name = 'e2e-sb-fail';
    await assert.rejects(
      withSandbox(t, name, async (sandbox) => {
        assert.ok(sandbox.address);
        throw new Error('the test body failed');
      }),
      /the test body failed/,
    );
    assert.deepEqual(await sandboxLeftovers(name), []);
  });
});

function procState(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return '';
  }
}

describe('sandbox without root', { skip: process.platform !== 'linux' ? 'Linux only' : false }, () => {
  it('refuses with exit 2 and says sandboxes need Linux and root', async (t) => {
    const asRoot = process.getuid?.() === 0;
    if (asRoot) {
      const cli = join(REPO_ROOT, 'dist', 'core', 'cli', 'main.js');
      if (spawnSync('runuser', ['-u', 'nobody', '--', 'test', '-r', cli]).status !== 0) {
        t.skip(`user nobody cannot run this checkout's CLI (${cli} is not readable for it, or runuser is missing)`);
        return;
      }
    }
    const r = await runCli(['sandbox', 'up', 'x'], asRoot ? { user: 'nobody', cwd: '/' } : { cwd: '/' });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /sandboxes need Linux and root/);
  });
});
