/**
 * The SSH transport against a real OpenSSH sshd on 127.0.0.1 (root login with a
 * temp key). Also rsync over OpenSSH with the same resolved settings.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { HostKeyMismatchError, KraftwerkError, RemoteCommandError, UnknownHostKeyError } from '../../core/errors.ts';
import { raw, secret, sh } from '../../core/shell/sh.ts';
import type { Remote, SshTarget } from '../../core/remote/remote.ts';
import { buildRsyncArgs, rsyncTo, runRsync } from '../../core/remote/rsync.ts';
import { connectSsh } from '../../core/remote/ssh.ts';
import { sshdUnavailable, sshKeygen, startSshd, type TestSshd } from '../helpers/sshd.ts';

const unavailable = sshdUnavailable();
let sshd: TestSshd;
let work: string;
let known: string;
let remote: Remote;
let serverFingerprint: string;

/** A target with a known_hosts file of its own (nothing recorded yet). */
function freshTarget(name: string, overrides: Partial<SshTarget> = {}): SshTarget {
  return sshd.target({ knownHostsFiles: [join(work, `known_hosts_${name}`)], ...overrides });
}

/**
 * A TCP proxy in front of sshd that closes the next `drop` connections at once,
 * before sshd's banner, as sshd itself does beyond MaxStartups; the rest are forwarded.
 */
async function droppingProxy(sshdPort: number, drop: number) {
  let toDrop = drop;
  let dropped = 0;
  const server = createServer((client) => {
    if (toDrop > 0) {
      toDrop--;
      dropped++;
      client.destroy();
      return;
    }
    const upstream = connect(sshdPort, '127.0.0.1');
    client.pipe(upstream).pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    dropped: () => dropped,
    dropNext: (n: number) => (toDrop = n),
    close: () => server.close(),
  };
}

describe('SSH transport against a real sshd', { skip: unavailable }, () => {
  before(async () => {
    sshd = await startSshd();
    work = mkdtempSync(join(tmpdir(), 'kw-transport-'));
    known = join(work, 'known_hosts');
    writeFileSync(known, `${sshd.knownHostsLine}\n`);
    serverFingerprint = execFileSync('ssh-keygen', ['-l', '-f', join(sshd.dir, 'host_key.pub')], { encoding: 'utf8' }).split(' ')[1]!;
    remote = await connectSsh(sshd.target({ knownHostsFiles: [known] }), { acceptNewHostKey: false });
  });

  after(async () => {
    await remote?.close();
    await sshd?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  describe('host keys', () => {
    it('refuses an unknown host without the flag, showing its fingerprint, and records nothing', async () => {
      const target = freshTarget('unknown');
      await assert.rejects(connectSsh(target, { acceptNewHostKey: false }), (error: unknown) => {
        assert.ok(error instanceof UnknownHostKeyError);
        assert.match(error.message, new RegExp(serverFingerprint.replace(/[+/]/g, '\\$&')));
        assert.match(error.hint!, /--accept-new-host-key/);
        return true;
      });
      assert.equal(existsSync(target.knownHostsFiles[0]!), false);
    });

    it('asks about an unknown host and refuses on no', async () => {
      const asked: string[] = [];
      const target = freshTarget('asked-no');
      const confirmHostKey = async (fp: string) => (asked.push(fp), false);
      await assert.rejects(connectSsh(target, { acceptNewHostKey: false, confirmHostKey }), UnknownHostKeyError);
      assert.deepEqual(asked, [serverFingerprint]);
      assert.equal(existsSync(target.knownHostsFiles[0]!), false);
    });

    it('records an unknown host with the flag, so ssh knows it and the next connection needs no flag', async () => {
      const target = freshTarget('accepted');
      await (await connectSsh(target, { acceptNewHostKey: true })).close();
      const file = target.knownHostsFiles[0]!;
      assert.equal(spawnSync('ssh-keygen', ['-F', `[127.0.0.1]:${sshd.port}`, '-f', file]).status, 0);
      const again = await connectSsh(target, { acceptNewHostKey: false });
      assert.equal((await again.exec(raw('echo ok'))).stdout, 'ok\n');
      await again.close();
    });

    it('records an unknown host when the user says yes', async () => {
      const target = freshTarget('asked-yes');
      await (await connectSsh(target, { acceptNewHostKey: false, confirmHostKey: async () => true })).close();
      assert.match(readFileSync(target.knownHostsFiles[0]!, 'utf8'), /^\[127\.0\.0\.1\]:\d+ ssh-ed25519 /);
    });

    it('refuses a changed host key with the fingerprint, even with the flag', async () => {
      const otherKey = sshKeygen(join(work, 'impostor'));
      const file = join(work, 'known_hosts_changed');
      writeFileSync(file, `[127.0.0.1]:${sshd.port} ${otherKey}\n`);
      const before = readFileSync(file, 'utf8');
      await assert.rejects(connectSsh(freshTarget('changed', { knownHostsFiles: [file] }), { acceptNewHostKey: true }), (error: unknown) => {
        assert.ok(error instanceof HostKeyMismatchError);
        assert.ok(error.message.includes(serverFingerprint), error.message);
        assert.ok(error.message.includes(file));
        return true;
      });
      assert.equal(readFileSync(file, 'utf8'), before);
    });

    it('refuses the server key when the host is known with a key of another type (hashed), even with the flag or a yes', async () => {
      const rsaKey = sshKeygen(join(work, 'impostor-rsa'), 'rsa');
      const file = join(work, 'known_hosts_other_type');
      writeFileSync(file, `[127.0.0.1]:${sshd.port} ${rsaKey}\n`);
      execFileSync('ssh-keygen', ['-q', '-H', '-f', file]);
      const before = readFileSync(file, 'utf8');
      let asked = false;
      const confirmHostKey = async () => ((asked = true), true);
      await assert.rejects(connectSsh(freshTarget('other-type', { knownHostsFiles: [file] }), { acceptNewHostKey: true, confirmHostKey }), (error: unknown) => {
        assert.ok(error instanceof HostKeyMismatchError, String(error));
        assert.ok(error.message.includes(serverFingerprint), error.message);
        assert.match(error.message, /known: ssh-rsa SHA256:/);
        return true;
      });
      assert.equal(asked, false, 'a known host is never asked about');
      assert.equal(readFileSync(file, 'utf8'), before);
    });

    it('refuses a host covered by a @cert-authority line whose plain key is not listed, even with the flag', async () => {
      const ca = sshKeygen(join(work, 'host-ca'));
      const file = join(work, 'known_hosts_ca');
      writeFileSync(file, `@cert-authority [127.0.0.1]:${sshd.port} ${ca}\n`);
      await assert.rejects(connectSsh(freshTarget('ca', { knownHostsFiles: [file] }), { acceptNewHostKey: true }), (error: unknown) => {
        assert.ok(error instanceof KraftwerkError && !(error instanceof UnknownHostKeyError), String(error));
        assert.match(error.message, /@cert-authority line in .*known_hosts_ca/);
        assert.ok(error.message.includes(serverFingerprint), error.message);
        return true;
      });
      assert.equal(readFileSync(file, 'utf8'), `@cert-authority [127.0.0.1]:${sshd.port} ${ca}\n`);
    });

    it('refuses a key listed as @revoked', async () => {
      const file = join(work, 'known_hosts_revoked');
      writeFileSync(file, `${sshd.knownHostsLine}\n@revoked * ${sshd.knownHostsLine.split(' ').slice(1).join(' ')}\n`);
      await assert.rejects(connectSsh(freshTarget('revoked', { knownHostsFiles: [file] }), { acceptNewHostKey: true }), /marked @revoked/);
    });
  });

  describe('exec', () => {
    it('returns exit code, stdout and stderr separately', async () => {
      const result = await remote.exec(raw('echo out; echo err >&2; exit 3'), { check: false });
      assert.deepEqual(result, { code: 3, stdout: 'out\n', stderr: 'err\n' });
    });

    it('throws RemoteCommandError on failure, naming the node and showing secrets masked', async () => {
      await assert.rejects(remote.exec(sh`echo ${secret('hunter2')} >/dev/null; echo broken >&2; exit 4`), (error: unknown) => {
        assert.ok(error instanceof RemoteCommandError);
        assert.equal(error.code, 4);
        assert.equal(error.node, 'testnode');
        assert.match(error.message, /testnode \(exit 4\): echo \*\*\* >\/dev\/null/);
        assert.match(error.message, /broken/);
        assert.ok(!error.message.includes('hunter2'));
        return true;
      });
    });

    it('never shows the stdout of a command whose output holds secrets (an env file) when it fails', async () => {
      const envFile = join(work, 'secret-env');
      writeFileSync(envFile, 'SECRET_KEY=hunter2\n');
      await assert.rejects(remote.exec(sh`cat ${envFile}; exit 5`, { secretOutput: true }), (error: unknown) => {
        assert.ok(error instanceof RemoteCommandError);
        assert.equal(error.code, 5);
        assert.ok(!error.message.includes('hunter2') && !error.stdout.includes('hunter2'), error.message);
        return true;
      });
    });

    it('streams stdout and stderr in the order they are written', async () => {
      const events: string[] = [];
      await remote.exec(raw('echo one; sleep 0.3; echo two >&2; sleep 0.3; echo three'), {
        onStdout: (chunk) => events.push(`out:${chunk.trim()}`),
        onStderr: (chunk) => events.push(`err:${chunk.trim()}`),
      });
      assert.deepEqual(events, ['out:one', 'err:two', 'out:three']);
    });

    it('passes stdin byte for byte and closes it', async () => {
      const input = Buffer.from('line 1\nné ✓ \u0000\u00ff no newline');
      const result = await remote.exec(raw('cat; echo "[$(cat | wc -c)]"'), { stdin: input });
      assert.equal(result.stdout, `${input.toString()}[0]\n`);
      // Without stdin the command sees end-of-file at once instead of hanging.
      assert.equal((await remote.exec(raw('cat | wc -c'), { timeoutMs: 5000 })).stdout.trim(), '0');
    });

    it('passes hostile arguments through quoting unchanged', async () => {
      const hostile = [`it's`, `"double"`, '$(touch /tmp/kw-pwned)', '`id`', 'a;b', 'new\nline', '$HOME', '*', '-n', ' spaced ', '\\'];
      const result = await remote.exec(sh`printf '%s\\0' ${hostile}`);
      assert.deepEqual(result.stdout.split('\0').slice(0, -1), hostile);
      assert.equal(existsSync('/tmp/kw-pwned'), false);
    });

    it('runs under sh whatever the login shell, and allocates a terminal on request', async () => {
      assert.equal((await remote.exec(raw('[ -t 1 ] && echo tty || echo pipe'))).stdout, 'pipe\n');
      assert.equal((await remote.exec(raw('[ -t 1 ] && echo tty || echo pipe'), { pty: true, stdin: '' })).stdout.trim(), 'tty');
    });

    it('stops a command that exceeds its timeout', async () => {
      const started = Date.now();
      await assert.rejects(remote.exec(raw('sleep 10'), { timeoutMs: 300 }), /command on testnode timed out \(ran longer than 300 ms\)/);
      assert.ok(Date.now() - started < 5000);
    });

    it('runs many commands at once over the one connection and counts them', async () => {
      const countBefore = remote.commandCount;
      const results = await Promise.all(Array.from({ length: 25 }, (_, i) => remote.exec(sh`sleep 0.1; echo ${i}`)));
      assert.deepEqual(results.map((r) => Number(r.stdout)), Array.from({ length: 25 }, (_, i) => i));
      assert.equal(remote.commandCount - countBefore, 25);
    });

    it('wraps commands in sudo -n when the target says so', async (t) => {
      if (spawnSync('sh', ['-c', 'command -v sudo']).status !== 0) return t.skip('sudo is not installed on this machine');
      const viaSudo = await connectSsh(sshd.target({ knownHostsFiles: [known], sudo: true }), { acceptNewHostKey: false });
      try {
        assert.equal((await viaSudo.exec(raw('id -u; echo "$SUDO_USER"'))).stdout, '0\nroot\n');
      } finally {
        await viaSudo.close();
      }
    });
  });

  describe('syncFiles', () => {
    it('writes files in one command, then reports no change the second time', async () => {
      const dir = join(work, 'synced');
      const files = [
        { path: `${dir}/etc/app.conf`, content: `name = "it's $(not run)"\n` },
        { path: `${dir}/shared/env`, content: 'SECRET=x', mode: 0o640, owner: 'root', group: 'nogroup' },
      ];
      const count = remote.commandCount;
      assert.deepEqual(await remote.syncFiles(files), files.map((f) => f.path));
      assert.equal(remote.commandCount - count, 1);
      assert.equal(readFileSync(files[0]!.path, 'utf8'), files[0]!.content);
      assert.equal(statSync(files[1]!.path).mode & 0o777, 0o640);
      assert.deepEqual(await remote.syncFiles(files), []);
      assert.deepEqual(await remote.syncFiles([{ ...files[0]!, content: 'changed\n' }, files[1]!]), [files[0]!.path]);
      assert.equal(remote.commandCount - count, 3);
    });
  });

  describe('connection errors', () => {
    it('names the node and says what to check when nothing listens', async () => {
      const target = sshd.target({ name: 'deadnode', port: 1, knownHostsFiles: [known] });
      await assert.rejects(connectSsh(target, { acceptNewHostKey: false }), (error: unknown) => {
        assert.ok(error instanceof KraftwerkError);
        assert.match(error.message, /deadnode .*connection refused/);
        assert.match(error.hint!, /sshd running/);
        return true;
      });
    });

    it('names the node when its host name does not resolve', async () => {
      const target = sshd.target({ name: 'typonode', host: 'kw-no-such-host.invalid', knownHostsFiles: [known] });
      await assert.rejects(connectSsh(target, { acceptNewHostKey: false }), /cannot connect to typonode: host name kw-no-such-host\.invalid not found/);
    });

    it('gives up when the server accepts the connection but never speaks SSH', async () => {
      const silent = createServer(() => {});
      await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
      const port = (silent.address() as { port: number }).port;
      try {
        const target = sshd.target({ name: 'mutenode', port, knownHostsFiles: [known] });
        await assert.rejects(connectSsh(target, { acceptNewHostKey: false, readyTimeoutMs: 500 }), (error: unknown) => {
          assert.ok(error instanceof KraftwerkError);
          assert.match(error.message, /mutenode .*no SSH handshake/);
          return true;
        });
      } finally {
        silent.close();
      }
    });

    it('tries again when the server drops the connection before its banner (sshd MaxStartups), for ssh2 and for rsync', async (t) => {
      const proxy = await droppingProxy(sshd.port, 2);
      try {
        // The alias keeps the host key check on the real sshd's known_hosts entry.
        const target = sshd.target({ name: 'busynode', port: proxy.port, hostKeyAlias: `[127.0.0.1]:${sshd.port}`, knownHostsFiles: [known] });
        const busy = await connectSsh(target, { acceptNewHostKey: false });
        assert.equal((await busy.exec(raw('echo through'))).stdout, 'through\n');
        await busy.close();
        assert.equal(proxy.dropped(), 2, 'two connections were dropped before the one that worked');

        if (spawnSync('rsync', ['--version']).error) return t.skip('rsync is not installed');
        proxy.dropNext(2);
        const source = join(work, 'busy-src');
        mkdirSync(source, { recursive: true });
        writeFileSync(join(source, 'f.txt'), 'copied\n');
        const dest = join(work, 'busy-dest');
        await rsyncTo(target, { kind: 'push', localDir: source, remoteDir: dest }).catch((error: unknown) =>
          assert.fail(`rsync did not try again: ${(error as Error).message}`),
        );
        assert.equal(readFileSync(join(dest, 'f.txt'), 'utf8'), 'copied\n');
        assert.equal(proxy.dropped(), 4);
      } finally {
        proxy.close();
      }
    });

    it('gives up after a few tries when the server keeps dropping, naming MaxStartups', async () => {
      const proxy = await droppingProxy(sshd.port, 1000);
      try {
        const target = sshd.target({ name: 'fullnode', port: proxy.port, hostKeyAlias: `[127.0.0.1]:${sshd.port}`, knownHostsFiles: [known] });
        await assert.rejects(connectSsh(target, { acceptNewHostKey: false }), (error: unknown) => {
          assert.ok(error instanceof KraftwerkError);
          assert.match(error.message, /fullnode .*closed the connection before the SSH handshake/);
          assert.match(error.hint!, /MaxStartups/);
          return true;
        });
        assert.equal(proxy.dropped(), 5);
      } finally {
        proxy.close();
      }
    });

    it('says which keys were refused when login fails', async () => {
      const stranger = join(work, 'stranger');
      sshKeygen(stranger);
      const target = sshd.target({ name: 'lockednode', identityFiles: [stranger], knownHostsFiles: [known] });
      await assert.rejects(connectSsh(target, { acceptNewHostKey: false }), (error: unknown) => {
        assert.ok(error instanceof KraftwerkError);
        assert.match(error.message, /cannot log in to lockednode .*tried .*stranger/);
        assert.match(error.hint!, /authorized_keys/);
        return true;
      });
    });
  });

  describe('ssh-agent and ProxyJump', () => {
    let agent: ReturnType<typeof spawn> | undefined;
    let agentSock: string;

    before(async () => {
      agentSock = join(work, 'agent.sock');
      agent = spawn('ssh-agent', ['-D', '-a', agentSock], { stdio: 'ignore' });
      for (let i = 0; i < 50 && !existsSync(agentSock); i++) await new Promise((r) => setTimeout(r, 100));
      execFileSync('ssh-add', ['-q', sshd.clientKey], { env: { ...process.env, SSH_AUTH_SOCK: agentSock } });
    });
    after(() => {
      agent?.kill();
    });

    async function withAgent<T>(fn: () => Promise<T>): Promise<T> {
      const saved = process.env.SSH_AUTH_SOCK;
      process.env.SSH_AUTH_SOCK = agentSock;
      try {
        return await fn();
      } finally {
        if (saved === undefined) delete process.env.SSH_AUTH_SOCK;
        else process.env.SSH_AUTH_SOCK = saved;
      }
    }

    it('logs in with a key held by ssh-agent', async () => {
      const viaAgent = await withAgent(() => connectSsh(sshd.target({ identityFiles: [], knownHostsFiles: [known] }), { acceptNewHostKey: false }));
      assert.equal((await viaAgent.exec(raw('echo agent'))).stdout, 'agent\n');
      await viaAgent.close();
    });

    it('connects through a jump host, verifying both host keys', async () => {
      const resolved: string[] = [];
      const resolveJumpHost = async (host: string, o: Partial<SshTarget>) => {
        resolved.push(`${o.user}@${host}:${o.port}`);
        return sshd.target({ name: host, knownHostsFiles: [known] });
      };
      const target = sshd.target({ knownHostsFiles: [known], proxyJump: `root@127.0.0.1:${sshd.port}` });
      const jumped = await connectSsh(target, { acceptNewHostKey: false, resolveJumpHost });
      assert.deepEqual(resolved, [`root@127.0.0.1:${sshd.port}`]);
      // Through the jump host, the server sees the connection come from its own forwarding.
      assert.match((await jumped.exec(raw('echo "$SSH_CONNECTION"'))).stdout, /^127\.0\.0\.1 /);
      await jumped.close();

      const unreachable = sshd.target({ knownHostsFiles: [known], port: 1, proxyJump: `root@127.0.0.1:${sshd.port}` });
      await assert.rejects(
        connectSsh(unreachable, { acceptNewHostKey: false, resolveJumpHost }),
        /jump host 127\.0\.0\.1 cannot reach 127\.0\.0\.1:1/,
      );
    });
  });

  describe('rsync over OpenSSH', () => {
    it('copies a folder with excludes, and hard-links unchanged files to the previous release', async (t) => {
      if (spawnSync('rsync', ['--version']).error) return t.skip('rsync is not installed');
      const project = join(work, 'project');
      mkdirSync(join(project, 'app'), { recursive: true });
      mkdirSync(join(project, '.git'), { recursive: true });
      mkdirSync(join(project, 'media'), { recursive: true });
      writeFileSync(join(project, 'app', 'wsgi.py'), 'application = None\n');
      writeFileSync(join(project, 'app', 'views.py'), 'v = 1\n');
      writeFileSync(join(project, 'app', 'views.pyc'), 'compiled');
      writeFileSync(join(project, '.git', 'HEAD'), 'ref: main\n');
      writeFileSync(join(project, 'media', 'big.bin'), 'upload');
      writeFileSync(join(project, 'rsync_exclude.txt'), 'rsync_exclude.txt\n');

      const releases = join(work, 'releases');
      mkdirSync(releases);
      const target = sshd.target({ knownHostsFiles: [known] });
      const common = { target, source: project, excludes: ['media/'], excludeFromFile: join(project, 'rsync_exclude.txt') };
      const lines: string[] = [];
      const first = await runRsync(buildRsyncArgs({ ...common, dest: `${releases}/r1` }), (l) => lines.push(l), 'testnode');
      assert.ok(first.bytesSent > 0);
      assert.equal(first.filesTransferred, 2);
      assert.ok(lines.length > 0, 'progress lines are streamed');
      assert.equal(readFileSync(`${releases}/r1/app/wsgi.py`, 'utf8'), 'application = None\n');
      for (const excluded of ['.git', 'media', 'app/views.pyc', 'rsync_exclude.txt']) {
        assert.equal(existsSync(`${releases}/r1/${excluded}`), false, `${excluded} is excluded`);
      }

      writeFileSync(join(project, 'app', 'views.py'), 'v = 22\n'); // another size: rsync's quick check compares size and mtime
      const second = await runRsync(buildRsyncArgs({ ...common, dest: `${releases}/r2`, linkDest: `${releases}/r1` }), undefined, 'testnode');
      assert.equal(second.filesTransferred, 1);
      assert.equal(statSync(`${releases}/r2/app/wsgi.py`).ino, statSync(`${releases}/r1/app/wsgi.py`).ino);
      assert.notEqual(statSync(`${releases}/r2/app/views.py`).ino, statSync(`${releases}/r1/app/views.py`).ino);
      assert.equal(readFileSync(`${releases}/r2/app/views.py`, 'utf8'), 'v = 22\n');
    });

    it('refuses a server whose key is not in known_hosts', async (t) => {
      if (spawnSync('rsync', ['--version']).error) return t.skip('rsync is not installed');
      const target = freshTarget('rsync-unknown');
      const args = buildRsyncArgs({ target, source: work, dest: join(work, 'never'), excludes: [] });
      await assert.rejects(runRsync(args, undefined, 'testnode'), (error: unknown) => {
        assert.ok(error instanceof KraftwerkError);
        assert.match(error.message, /rsync to testnode failed/);
        assert.match(error.hint!, /host key/);
        return true;
      });
      assert.equal(existsSync(join(work, 'never')), false);
    });
  });
});
