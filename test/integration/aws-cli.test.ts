/**
 * The aws commands through the built CLI (`node bin/kraftwerk.js`, made by
 * `npm run build`): what a user sees without credentials, that other commands
 * never load the AWS SDK, and a create-node → destroy-node round trip against
 * the local EC2 endpoint through core's real kit (listr2 progress, config).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse } from 'yaml';
import { NO_CREDENTIALS } from '../../tools/aws/errors.ts';
import { cliPath, repoRoot } from '../helpers/cli.ts';
import { FakeEc2, list, tagsOf } from '../helpers/fake-ec2.ts';

const built = existsSync(join(repoRoot, 'dist', 'core', 'cli', 'main.js'));
const notBuilt = built ? false : 'the CLI is not built (dist/core/cli/main.js is missing): run npm run build first';

const PUBLIC_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKq3HzZ6+Jk1TGAaT2bNeYw5AqZ1Nw2gRk0oVdM8yV0b me@laptop';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI without blocking this process (the fake EC2 endpoint answers from here). */
function cli(args: string[], options: { env: NodeJS.ProcessEnv; cwd?: string; nodeArgs?: string[] }): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [...(options.nodeArgs ?? []), cliPath, ...args],
      { env: { NO_COLOR: '1', ...options.env }, cwd: options.cwd ?? repoRoot, timeout: 60_000, encoding: 'utf8' },
      (error, stdout, stderr) => resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr }),
    );
  });
}

/** A bare environment: no AWS variables, HOME in a fresh folder (no ~/.aws, no ~/.ssh). */
function bareEnv(): { env: NodeJS.ProcessEnv; home: string } {
  const home = mkdtempSync(join(tmpdir(), 'kw-aws-home-'));
  return { env: { PATH: process.env.PATH, HOME: home }, home };
}

/**
 * Node options that log every module URL under node_modules/@aws-sdk/ the
 * process resolves, through a module resolve hook (ESM imports and the SDK's own).
 */
function moduleLogger(): { nodeArgs: string[]; loaded: () => string[] } {
  const dir = mkdtempSync(join(tmpdir(), 'kw-modlog-'));
  const log = join(dir, 'loaded.txt');
  writeFileSync(log, '');
  writeFileSync(
    join(dir, 'hook.mjs'),
    `import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  const result = await next(specifier, context);
  if (result.url.includes('/node_modules/@aws-sdk/')) appendFileSync(${JSON.stringify(log)}, result.url + '\\n');
  return result;
}
`,
  );
  writeFileSync(join(dir, 'register.mjs'), `import { register } from 'node:module';\nregister('./hook.mjs', import.meta.url);\n`);
  return {
    nodeArgs: ['--import', join(dir, 'register.mjs')],
    loaded: () => readFileSync(log, 'utf8').split('\n').filter(Boolean),
  };
}

describe('aws commands in the CLI', { skip: notBuilt }, () => {
  it('kraftwerk --help and create-node --help do not load the AWS SDK', async () => {
    for (const args of [['--help'], ['create-node', '--help'], ['plugins', '--help']]) {
      const logger = moduleLogger();
      const r = await cli(args, { ...bareEnv(), nodeArgs: logger.nodeArgs });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^Usage: kraftwerk/);
      assert.deepEqual(logger.loaded(), [], `kraftwerk ${args.join(' ')} loaded the SDK`);
    }
    // The same detector does see the SDK when a command needs it.
    const logger = moduleLogger();
    await cli(['create-node', 'web1', '--region', 'eu-central-1'], { ...bareEnv(), nodeArgs: logger.nodeArgs });
    assert.ok(logger.loaded().some((u) => u.includes('/@aws-sdk/client-ec2/')), 'create-node loads @aws-sdk/client-ec2');
  });

  it('without credentials: one line, exit code 2, no stack trace', async () => {
    const { env, home } = bareEnv();
    mkdirSync(join(home, '.ssh'));
    writeFileSync(join(home, '.ssh/id_ed25519.pub'), PUBLIC_KEY);
    for (const args of [
      ['create-node', 'web1', '--region', 'eu-central-1'],
      ['create-node', 'web1'],
      ['destroy-node', 'web1', '--region', 'eu-central-1'],
    ]) {
      const r = await cli(args, { env });
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stderr, `error: ${NO_CREDENTIALS}\n`);
      assert.equal(r.stdout, '');
    }
  });

  describe('against a local EC2 endpoint', () => {
    let fake: FakeEc2;
    let banner: Server;
    let sshPort: number;
    before(async () => {
      fake = new FakeEc2({ instanceAddress: '127.0.0.1' });
      await fake.start();
      banner = createServer((s) => s.end('SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n'));
      await new Promise<void>((r) => banner.listen(0, '127.0.0.1', r));
      sshPort = (banner.address() as { port: number }).port;
    });
    after(async () => {
      banner.close();
      await fake.stop();
    });

    it('create-node records the node in kraftwerk.yaml; destroy-node terminates it and removes it', async () => {
      const { env, home } = bareEnv();
      Object.assign(env, { AWS_ACCESS_KEY_ID: 'AKIDKRAFTWERKTEST', AWS_SECRET_ACCESS_KEY: 'fake-secret', AWS_REGION: 'eu-west-1' });
      mkdirSync(join(home, '.ssh'));
      writeFileSync(join(home, '.ssh/id_ed25519.pub'), PUBLIC_KEY);
      const project = mkdtempSync(join(tmpdir(), 'kw-aws-project-'));
      const config = '# the shop\ndomain: shop.example.com\npackage: shop\n';
      writeFileSync(join(project, 'kraftwerk.yaml'), config);

      const created = await cli(
        ['create-node', 'web1', '--endpoint', fake.endpoint, '--ssh-port', String(sshPort), '--write-config', '--size', 't3.small'],
        { env, cwd: project },
      );
      assert.equal(created.code, 0, created.stderr);
      // Plain progress lines (no TTY), one per step.
      for (const step of ['check name', 'find image', 'import key', 'security group', 'launch', 'wait for running', 'wait for SSH']) {
        assert.match(created.stdout, new RegExp(step), step);
      }
      assert.match(created.stdout, /web1 is up: admin@127\.0\.0\.1/);
      assert.match(created.stdout, /To reach the node by name, add to \/etc\/hosts: 127\.0\.0\.1 web1/);
      const run = fake.calls('RunInstances')[0]!.params;
      assert.equal(run.InstanceType, 't3.small');
      assert.deepEqual(tagsOf(run, 'instance'), { Name: 'web1', 'kraftwerk:node': 'web1' });
      assert.match(fake.requests[0]!.authorization!, /\/eu-west-1\/ec2\/aws4_request/, 'region from AWS_REGION');
      const recorded = readFileSync(join(project, 'kraftwerk.yaml'), 'utf8');
      assert.ok(recorded.startsWith(config));
      assert.deepEqual(parse(recorded).nodes, { web1: { host: '127.0.0.1', user: 'admin', sudo: true, port: sshPort } });

      // No TTY and no --yes: destroy-node refuses and changes nothing.
      const refused = await cli(['destroy-node', 'web1', '--endpoint', fake.endpoint], { env, cwd: project });
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /^error: destroy-node web1: not confirmed, nothing was terminated\n  Pass --yes/);
      assert.equal(fake.calls('TerminateInstances').length, 0);

      const destroyed = await cli(['destroy-node', 'web1', '--endpoint', fake.endpoint, '--yes'], { env, cwd: project });
      assert.equal(destroyed.code, 0, destroyed.stderr);
      const instanceId = [...fake.instances.keys()][0]!;
      assert.deepEqual(list(fake.calls('TerminateInstances')[0]!.params, 'InstanceId'), [instanceId]);
      assert.equal(readFileSync(join(project, 'kraftwerk.yaml'), 'utf8'), config);
    });

    it('an EC2 error is one line with what to do, without a stack trace', async () => {
      const { env, home } = bareEnv();
      Object.assign(env, { AWS_ACCESS_KEY_ID: 'AKIDKRAFTWERKTEST', AWS_SECRET_ACCESS_KEY: 'fake-secret' });
      mkdirSync(join(home, '.ssh'));
      writeFileSync(join(home, '.ssh/id_ed25519.pub'), PUBLIC_KEY);
      fake.failNext('DescribeInstances', { code: 'AuthFailure', status: 401, message: 'AWS was not able to validate the provided access credentials' });
      const r = await cli(['create-node', 'web2', '--region', 'eu-central-1', '--endpoint', fake.endpoint], { env });
      assert.equal(r.code, 1);
      assert.equal(
        r.stderr.split('\n').filter((l) => l.startsWith('error:')).join('\n'),
        'error: AWS rejected the credentials (AuthFailure) when calling DescribeInstances',
      );
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    });
  });
});
