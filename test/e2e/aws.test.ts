/**
 * create-node end to end: the real CLI talks to the local EC2 endpoint, whose
 * "instance" is a sandbox server made to look like Debian's EC2 image (login
 * user `admin` with passwordless sudo, root login closed to the user's key).
 * The node create-node records then goes through setup-node and deploy of
 * examples/flask-hello, all through `sudo`.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { raw, sh } from '../../core/shell/sh.ts';
import { connectSsh } from '../../core/remote/ssh.ts';
import type { Remote } from '../../core/remote/remote.ts';
import { tempProject } from '../helpers/cli.ts';
import { FakeEc2, tagsOf } from '../helpers/fake-ec2.ts';
import { REPO_ROOT, runCli, sandboxSkip, withSandbox } from './harness.ts';

const SANDBOX = 'e2e-aws';

function get(address: string, path: string, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: address, port: 80, path, headers: { host }, timeout: 15_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET http://${address}${path} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/** What Debian's EC2 image has before cloud-init runs: `admin` with passwordless sudo. */
async function makeLikeDebianAmi(root: Remote): Promise<void> {
  await root.exec(raw('apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sudo >/dev/null'), { timeoutMs: 10 * 60_000 });
  await root.exec(
    raw(
      'id admin >/dev/null 2>&1 || useradd --create-home --shell /bin/bash admin; ' +
        "echo 'admin ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/90-cloud-init-users && chmod 0440 /etc/sudoers.d/90-cloud-init-users",
    ),
  );
}

/** The part of cloud-init that matters here: the user data's keys go to the login user. */
async function runCloudInit(root: Remote, userData: string): Promise<void> {
  const config = parse(userData) as { ssh_authorized_keys?: string[]; hostname?: string };
  assert.ok(config.ssh_authorized_keys?.length, 'user data authorizes a key');
  const keys = `${config.ssh_authorized_keys.join('\n')}\n`;
  await root.exec(
    sh`install -d -m 700 -o admin -g admin /home/admin/.ssh && cat > /home/admin/.ssh/authorized_keys && chown admin:admin /home/admin/.ssh/authorized_keys && chmod 600 /home/admin/.ssh/authorized_keys`,
    { stdin: keys },
  );
}

/**
 * OpenSSH reads known_hosts from the passwd home directory, not $HOME, so the
 * key that `--accept-new-host-key` records for the "instance" lands in the real
 * user's known_hosts. Sandbox addresses are reused: forget the address before
 * (a key left by an earlier run would be refused as changed) and after the test.
 */
function forgetHostKey(address: string): void {
  const g = spawnSync('ssh', ['-G', address], { encoding: 'utf8' });
  const files = /^userknownhostsfile (.+)$/m.exec(g.stdout)?.[1]?.split(' ') ?? [];
  for (const file of files) spawnSync('ssh-keygen', ['-q', '-R', address, '-f', file], { stdio: 'ignore' });
}

describe('aws create-node → setup-node → deploy on a sandbox behind the EC2 endpoint', { skip: sandboxSkip() }, () => {
  it('creates the node, records admin with sudo, and serves examples/flask-hello through it', { timeout: 40 * 60_000 }, async (t) => {
    await withSandbox(t, SANDBOX, async (sandbox) => {
      const root = await connectSsh(sandbox.target, { acceptNewHostKey: false });
      const fake = new FakeEc2({ instanceAddress: sandbox.address });
      await fake.start();
      forgetHostKey(sandbox.address);
      try {
        await makeLikeDebianAmi(root);

        // The user's own key, in a home folder of its own (known_hosts lands there too).
        const home = mkdtempSync(join(tmpdir(), 'kw-aws-e2e-home-'));
        mkdirSync(join(home, '.ssh'), { mode: 0o700 });
        execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'e2e@kraftwerk', '-f', join(home, '.ssh/id_ed25519')]);
        const env = { HOME: home, AWS_ACCESS_KEY_ID: 'AKIDKRAFTWERKTEST', AWS_SECRET_ACCESS_KEY: 'fake-secret', AWS_REGION: 'eu-central-1' };
        const project = tempProject({}, join(REPO_ROOT, 'examples', 'flask-hello'));

        const created = await runCli(['create-node', 'web1', '--endpoint', fake.endpoint, '--write-config'], { cwd: project, env, timeoutMs: 5 * 60_000 });
        assert.equal(created.code, 0, `${created.stdout}\n${created.stderr}`);
        assert.match(created.stdout, new RegExp(`web1 is up: admin@${sandbox.address.replaceAll('.', '\\.')}`));
        const [instance] = [...fake.instances.values()];
        assert.ok(instance);
        assert.deepEqual(tagsOf(fake.calls('RunInstances')[0]!.params, 'instance'), { Name: 'web1', 'kraftwerk:node': 'web1' });
        const nodes = parse(readFileSync(join(project, 'kraftwerk.yaml'), 'utf8')).nodes;
        assert.deepEqual(nodes, { web1: { host: sandbox.address, user: 'admin', sudo: true } });

        await runCloudInit(root, instance.userData!);
        // Root is not reachable with the user's key: everything below goes through admin and sudo.
        const asRoot = spawnSync('ssh', [
          ...['-i', join(home, '.ssh/id_ed25519'), '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes'],
          ...['-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'ConnectTimeout=10'],
          `root@${sandbox.address}`,
          'true',
        ], { encoding: 'utf8', timeout: 30_000 });
        assert.notEqual(asRoot.status, 0, 'root login with the user key is refused');
        assert.match(asRoot.stderr, /Permission denied/);

        const setup = await runCli(['setup-node', 'web1', '--accept-new-host-key'], { cwd: project, env, timeoutMs: 30 * 60_000 });
        assert.equal(setup.code, 0, `${setup.stdout}\n${setup.stderr}`);
        const deploy = await runCli(['deploy', 'web1'], { cwd: project, env, timeoutMs: 15 * 60_000 });
        assert.equal(deploy.code, 0, `${deploy.stdout}\n${deploy.stderr}`);

        const page = await get(sandbox.address, '/', 'flask-hello.test');
        assert.equal(page.status, 200, page.body);
        assert.match(page.body, /Hello from Kraftwerk/);
        assert.equal((await get(sandbox.address, '/health', 'flask-hello.test')).body, 'ok\n');

        const destroyed = await runCli(['destroy-node', 'web1', '--endpoint', fake.endpoint, '--yes'], { cwd: project, env });
        assert.equal(destroyed.code, 0, destroyed.stderr);
        assert.equal(instance.state, 'shutting-down');
        assert.equal(parse(readFileSync(join(project, 'kraftwerk.yaml'), 'utf8')).nodes, undefined);
      } finally {
        forgetHostKey(sandbox.address);
        await fake.stop();
        await root.close();
      }
    });
  });
});
