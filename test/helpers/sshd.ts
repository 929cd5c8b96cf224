/**
 * A real OpenSSH sshd on 127.0.0.1 for transport tests: a free port, its own
 * config, host key and one authorized client key, all in a temp folder.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SshTarget } from '../../core/remote/remote.ts';

const SSHD = '/usr/sbin/sshd';

export interface TestSshd {
  port: number;
  dir: string;
  /** The server's host key as a known_hosts line for 127.0.0.1 on this port. */
  knownHostsLine: string;
  /** Private key that may log in as root. */
  clientKey: string;
  /** A target for this server with an empty known_hosts file of its own. */
  target(overrides?: Partial<SshTarget>): SshTarget;
  stop(): Promise<void>;
}

/** Why this machine cannot run the sshd tests, or undefined when it can. */
export function sshdUnavailable(): string | undefined {
  if (!existsSync(SSHD)) return `${SSHD} is not installed (apt-get install openssh-server)`;
  if (process.getuid?.() !== 0) return 'sshd tests log in as root and must run as root';
  return undefined;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export function sshKeygen(file: string, type = 'ed25519'): string {
  execFileSync('ssh-keygen', ['-q', '-t', type, '-N', '', '-C', 'kraftwerk-test', '-f', file]);
  return readFileSync(`${file}.pub`, 'utf8').trim();
}

export async function startSshd(): Promise<TestSshd> {
  const dir = mkdtempSync(join(tmpdir(), 'kw-sshd-'));
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const hostPub = sshKeygen(join(dir, 'host_key'));
  writeFileSync(join(dir, 'authorized_keys'), `${sshKeygen(join(dir, 'client_key'))}\n`);
  const port = await freePort();
  writeFileSync(
    join(dir, 'sshd_config'),
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${join(dir, 'host_key')}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      'PermitRootLogin prohibit-password',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      'AllowTcpForwarding yes',
      'LogLevel VERBOSE',
      '',
    ].join('\n'),
  );

  const child: ChildProcess = spawn(SSHD, ['-D', '-e', '-f', join(dir, 'sshd_config')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`sshd did not start within 10 s:\n${log}`)), 10_000);
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      log += chunk;
      if (log.includes('Server listening on')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`sshd exited with ${code}:\n${log}`));
    });
  });

  const [keyType, keyBase64] = hostPub.split(' ');
  return {
    port,
    dir,
    knownHostsLine: `[127.0.0.1]:${port} ${keyType} ${keyBase64}`,
    clientKey: join(dir, 'client_key'),
    target: (overrides = {}) => ({
      name: 'testnode',
      host: '127.0.0.1',
      port,
      user: 'root',
      identityFiles: [join(dir, 'client_key')],
      knownHostsFiles: [join(dir, 'known_hosts')],
      ...overrides,
    }),
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
