/**
 * The tls plugin's decisions on a deploy, with a server that answers from a
 * script (the real answers are exercised in test/integration/tls-certbot.test.ts
 * and on a sandbox in test/e2e/tls.test.ts).
 */
import assert from 'node:assert/strict';
import { soloTopology } from '../../core/engine/topology.ts';
import { describe, it } from 'node:test';
import { configSchema } from '../helpers/config.ts';
import { type DeployContext, RemoteFileSet, SetupPackages, type SetupContext } from '../../core/engine/context.ts';
import { KraftwerkError } from '../../core/errors.ts';
import { createHooks, interceptHooks } from '../../core/engine/hooks.ts';
import type { Script } from '../../core/shell/sh.ts';
import { createSite } from '../../core/config/site.ts';
import { getSiteTls, TLS_DECIDE_STAGE, TLS_ISSUE_STAGE } from '../../plugins/tls/state.ts';
import { type CollectedTask, TaskList } from '../../core/engine/tasks.ts';
import type { ExecOptions, ExecResult, Remote, RemoteFile } from '../../core/remote/remote.ts';
import tls from '../../plugins/tls/index.ts';

type Answer = Partial<ExecResult> | undefined;

/** A server that answers each command by the first matching rule and records what it was asked. */
class ScriptedRemote implements Remote {
  readonly target = { name: 'web1', host: '203.0.113.7', port: 22, user: 'root', identityFiles: [], knownHostsFiles: [] };
  readonly dryRun = false;
  readonly commands: string[] = [];
  readonly written: RemoteFile[] = [];
  constructor(private readonly rules: [RegExp, Answer][]) {}
  get commandCount() {
    return this.commands.length;
  }
  async exec(cmd: Script, options?: ExecOptions): Promise<ExecResult> {
    this.commands.push(cmd.text);
    const answer = this.rules.find(([re]) => re.test(cmd.text))?.[1];
    const result = { code: 0, stdout: '', stderr: '', ...answer };
    if (result.code !== 0 && options?.check !== false) throw new Error(`exit ${result.code}: ${cmd.text}`);
    return result;
  }
  async rsync(): Promise<undefined> {
    throw new Error('no rsync in this test');
  }
  async syncFiles(files: RemoteFile[]) {
    this.written.push(...files);
    return files.map((f) => f.path);
  }
  async close() {}
}

function setup(config: Record<string, unknown>, rules: [RegExp, Answer][]) {
  const site = createSite(configSchema.parse({ domain: 'shop.example.com', aliases: ['www.shop.example.com'], ...config }), {
    configFile: '/p/kraftwerk.yaml',
    sourceDir: '/p',
    name: 'shop',
  });
  const hooks = createHooks();
  interceptHooks(hooks);
  tls.apply!(hooks, site);
  const remote = new ScriptedRemote(rules);
  // Only what the tls plugin reads; DeployContext grows with other plugins' needs.
  const ctx = {
    site,
    node: 'web1',
    topology: soloTopology('web1'),
    remote,
    options: { dryRun: false, verbose: false, quiet: true },
    log: { info() {}, warn() {} },
    state: new Map(),
    release: { id: 'R1', path: '/srv/shop/releases/R1', venv: '', deployer: 'me' },
    deploy: { upgradePackages: false },
    facts: { setUp: true, otherSites: {}, env: {}, envLocal: {} },
    env: {},
    files: new RemoteFileSet(),
  } as unknown as DeployContext;
  return { site, hooks, remote, ctx };
}

const handle = { output() {}, title() {}, skip() {} };

async function runTasks(tasks: CollectedTask<DeployContext>[], ctx: DeployContext): Promise<string[]> {
  const ran: string[] = [];
  for (const t of tasks) {
    const skip = await t.skip?.(ctx);
    if (skip) continue;
    ran.push(t.title);
    await t.run(ctx, handle);
  }
  return ran;
}

const PROBE = /command -v certbot/;
const CERTBOT = /certbot certonly/;
const FAILED = `Certbot failed to authenticate some domains (authenticator: webroot). The Certificate Authority reported these problems:
  Domain: www.shop.example.com
  Type:   dns
  Detail: DNS problem: NXDOMAIN looking up A for www.shop.example.com

Some challenges have failed.`;
const EXISTING = `certbot=1
notAfter=Feb 23 17:21:50 2099 GMT
serial=AA
issuer=CN = Pebble Intermediate CA 1
X509v3 Subject Alternative Name: 
    DNS:shop.example.com
cert=1
server=https://ca.test/dir
`;

describe('tls plugin on a deploy', () => {
  it('first deploy: publishes plain HTTP with the challenge webroot, then requests the certificate after nginx reloads', async () => {
    const { hooks, remote, ctx } = setup({ tls: { acme_server: 'https://ca.test/dir' } }, [[PROBE, { stdout: 'certbot=1\n' }]]);
    const configure = new TaskList<DeployContext>('configure');
    await hooks.configure.promise(ctx, configure);
    const [decide] = configure.sorted();
    assert.equal(decide!.stage, TLS_DECIDE_STAGE);
    await runTasks(configure.sorted(), ctx);
    assert.deepEqual(getSiteTls(ctx), {
      acmeWebroot: '/var/lib/kraftwerk/acme/shop',
      certificate: undefined,
      hstsMaxAge: 0,
      protocols: ['TLSv1.2', 'TLSv1.3'],
      ciphers: getSiteTls(ctx)!.ciphers,
      reloadNeeded: false,
    });
    assert.ok(ctx.files.all.some((f) => f.path === '/etc/letsencrypt/renewal-hooks/deploy/kraftwerk-reload-nginx'));

    const restart = new TaskList<DeployContext>('restart');
    await hooks.restart.promise(ctx, restart);
    const obtain = restart.sorted().find((t) => t.title === 'obtain certificate')!;
    assert.equal(obtain.stage, TLS_ISSUE_STAGE);
    assert.deepEqual(await runTasks(restart.sorted(), ctx), ['obtain certificate']);
    assert.match(remote.commands.at(-1)!, /certbot certonly .* -d shop\.example\.com -d www\.shop\.example\.com$/);
    assert.deepEqual(getSiteTls(ctx)!.certificate, {
      fullchain: '/etc/letsencrypt/live/shop/fullchain.pem',
      privateKey: '/etc/letsencrypt/live/shop/privkey.pem',
    });
    assert.equal(getSiteTls(ctx)!.reloadNeeded, true, 'nginx renders the 443 server and reloads');
  });

  it('failed issuance: the site stays on HTTP and the deploy ends with the CA’s error after the release went live', async () => {
    const { hooks, ctx } = setup({ tls: { acme_server: 'https://ca.test/dir' } }, [
      [PROBE, { stdout: 'certbot=1\n' }],
      [CERTBOT, { code: 1, stdout: FAILED }],
    ]);
    const configure = new TaskList<DeployContext>('configure');
    await hooks.configure.promise(ctx, configure);
    await runTasks(configure.sorted(), ctx);
    const restart = new TaskList<DeployContext>('restart');
    await hooks.restart.promise(ctx, restart);
    await assert.rejects(runTasks(restart.sorted(), ctx), (err: unknown) => {
      assert.ok(err instanceof KraftwerkError);
      assert.match(err.message, /^could not obtain a certificate for shop\.example\.com, www\.shop\.example\.com from https:\/\/ca\.test\/dir:/);
      assert.match(err.message, /www\.shop\.example\.com: dns: DNS problem: NXDOMAIN/);
      assert.match(err.message, /keeps serving over plain HTTP \(http:\/\/shop\.example\.com\/\)/);
      assert.match(err.hint ?? '', /DNS of every domain points at web1/);
      return true;
    });
    assert.equal(getSiteTls(ctx)!.certificate, undefined, 'nginx keeps serving plain HTTP');
    const errorTask = restart.sorted().find((t) => t.title === 'certificate error')!;
    assert.ok(errorTask.stage! > 600, 'reported after the health check and the release record');
  });

  it('an added alias keeps the old certificate served and re-issues with --expand', async () => {
    const { hooks, remote, ctx } = setup({ tls: { acme_server: 'https://ca.test/dir' } }, [[PROBE, { stdout: EXISTING }]]);
    const configure = new TaskList<DeployContext>('configure');
    await hooks.configure.promise(ctx, configure);
    await runTasks(configure.sorted(), ctx);
    assert.ok(getSiteTls(ctx)!.certificate, 'HTTPS goes on with the certificate the node has');
    const restart = new TaskList<DeployContext>('restart');
    await hooks.restart.promise(ctx, restart);
    await runTasks(restart.sorted(), ctx);
    assert.match(remote.commands.at(-1)!, /certbot certonly .* --expand -d shop\.example\.com -d www\.shop\.example\.com$/);
  });

  it('a certificate that fits costs one read-only command and no certbot run', async () => {
    const { hooks, remote, ctx } = setup({ aliases: [], tls: { acme_server: 'https://ca.test/dir', hsts: true } }, [[PROBE, { stdout: EXISTING }]]);
    for (const phase of ['configure', 'restart'] as const) {
      const list = new TaskList<DeployContext>(phase);
      await hooks[phase].promise(ctx, list);
      await runTasks(list.sorted(), ctx);
    }
    assert.equal(remote.commands.length, 1);
    assert.equal(getSiteTls(ctx)!.hstsMaxAge, 31_536_000);
    assert.equal(getSiteTls(ctx)!.reloadNeeded, false);
  });

  it('tls: false removes an earlier certificate only when the nginx site changed', async () => {
    const { hooks, remote, ctx } = setup({}, [[/certbot delete/, { stdout: 'removed certificate shop\n' }]]);
    const configure = new TaskList<DeployContext>('configure');
    await hooks.configure.promise(ctx, configure);
    assert.equal(configure.length, 0);
    const restart = new TaskList<DeployContext>('restart');
    await hooks.restart.promise(ctx, restart);
    assert.deepEqual(await runTasks(restart.sorted(), ctx), [], 'no-change deploy: no command');
    const nginxSite = '/etc/nginx/sites-available/kraftwerk-shop.conf';
    // A rollback restoring a release whose site still uses the certificate keeps it.
    ctx.files.add({ path: nginxSite, content: 'ssl_certificate /etc/letsencrypt/live/shop/fullchain.pem;\n' });
    ctx.files.changed.add(nginxSite);
    assert.deepEqual(await runTasks(restart.sorted(), ctx), []);
    ctx.files.add({ path: nginxSite, content: 'listen 80;\n' });
    assert.deepEqual(await runTasks(restart.sorted(), ctx), ['remove certificates of an earlier TLS setup']);
    assert.match(remote.commands[0]!, /certbot delete --non-interactive --cert-name shop/);
    assert.equal(getSiteTls(ctx), undefined);
  });
});

describe('tls plugin changing provider', () => {
  it('letsencrypt after self-signed removes the self-signed files once nginx no longer uses them', async () => {
    const { hooks, remote, ctx } = setup({ tls: { acme_server: 'https://ca.test/dir' } }, [[PROBE, { stdout: EXISTING }]]);
    const restart = new TaskList<DeployContext>('restart');
    await hooks.restart.promise(ctx, restart);
    ctx.files.add({ path: '/etc/nginx/sites-available/kraftwerk-shop.conf', content: 'ssl_certificate /etc/letsencrypt/live/shop/fullchain.pem;\n' });
    ctx.files.changed.add('/etc/nginx/sites-available/kraftwerk-shop.conf');
    assert.deepEqual(await runTasks(restart.sorted(), ctx), ['remove certificates of the other provider']);
    assert.match(remote.commands[0]!, /for d in \/etc\/kraftwerk\/tls\/shop;/);
    assert.doesNotMatch(remote.commands[0]!, /certbot delete/);
  });
});

describe('tls plugin at setup-node', () => {
  async function packagesFor(config: Record<string, unknown>) {
    const { hooks, ctx } = setup(config, []);
    const packages = new SetupPackages();
    const tasks = new TaskList<SetupContext>('setupNode');
    await hooks.setupNode.promise({ ...ctx, changes: [] }, tasks, packages);
    return packages.names;
  }

  it('installs certbot only for a site that asks for ACME certificates', async () => {
    assert.deepEqual(await packagesFor({}), []);
    assert.deepEqual(await packagesFor({ tls: { provider: 'self-signed' } }), ['openssl']);
    assert.deepEqual(await packagesFor({ tls: {} }), ['openssl', 'certbot']);
  });
});
