// Node roles (issue 16): which node of a group runs what, as kraftwerk.yaml says, checked before
// any node is touched; and a plugin's taps kept off the nodes that are not of its roles.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { coreConfigSchema, type Config } from '../../core/config/schema.ts';
import { ConfigError } from '../../core/errors.ts';
import { collectTasks, createHooks, interceptHooks } from '../../core/engine/hooks.ts';
import { groupRoles, groupTopology, placementOf, soloTopology, type Topology } from '../../core/engine/topology.ts';
import cron from '../../plugins/cron/index.ts';
import postgres from '../../plugins/postgres/index.ts';
import redis from '../../plugins/redis/index.ts';
import nginx from '../../plugins/nginx/index.ts';
import processes from '../../plugins/processes/index.ts';

const plugins = [nginx, processes, cron, postgres, redis];
const config = (nodes: Record<string, unknown>, extra: Record<string, unknown> = {}): Config =>
  coreConfigSchema.parse({ domain: 'shop.example', nodes, ...extra });
const rolesOf = (c: Config, nodes: string[]) => {
  const { roles } = groupRoles(c, nodes, plugins);
  return Object.fromEntries([...roles].map(([n, r]) => [n, [...r].sort()]));
};
const failure = (fn: () => unknown): ConfigError => {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a ConfigError');
};

describe('node roles', () => {
  const split = config({
    lb: { host: 'lb1.example', roles: ['lb'] },
    web1: { host: 'web1.example', roles: ['web', 'worker'] },
    web2: { host: 'web2.example', roles: ['web'] },
    db: { host: 'db1.example', roles: ['db'], private_host: '10.0.0.5' },
    production: ['lb', 'web1', 'web2', 'db'],
  });

  it('a group where no node declares roles: every node has every role (today\'s behaviour)', () => {
    const c = config({ a: 'a.example', b: 'b.example', g: ['a', 'b'] });
    const got = rolesOf(c, ['a', 'b']);
    assert.deepEqual(got.a, got.b);
    assert.ok(got.a!.includes('cron') && got.a!.includes('postgres') && got.a!.includes('web'));
  });

  it('db brings postgres and redis; cron goes to the first worker node only', () => {
    assert.deepEqual(rolesOf(split, ['lb', 'web1', 'web2', 'db']), {
      lb: ['lb'],
      web1: ['cron', 'web', 'worker'],
      web2: ['web'],
      db: ['db', 'postgres', 'redis'],
    });
  });

  it('no worker node: the workers and cron go to the first web node', () => {
    const c = config({ w1: { host: 'a', roles: ['web'] }, w2: { host: 'b', roles: ['web'] }, d: { host: 'c', roles: ['db'] } });
    assert.deepEqual(rolesOf(c, ['w1', 'w2', 'd']).w1, ['cron', 'web', 'worker']);
    assert.deepEqual(rolesOf(c, ['w1', 'w2', 'd']).w2, ['web']);
  });

  it('refuses an unknown role, naming the key and the known roles', () => {
    const c = config({ w: { host: 'a', roles: ['web', 'databse'] } });
    const err = failure(() => groupRoles(c, ['w'], plugins));
    assert.match(err.message, /nodes\.w\.roles/);
    assert.match(err.message, /unknown role "databse"/);
    assert.match(err.hint ?? '', /db \(/);
  });

  it('refuses a group without a web node', () => {
    const c = config({ d: { host: 'a', roles: ['db'] }, l: { host: 'b', roles: ['lb'] } });
    assert.match(failure(() => groupRoles(c, ['d', 'l'], plugins)).message, /no node with the role web/);
  });

  it('refuses cron on two nodes: a job must never run twice', () => {
    const c = config({ w1: { host: 'a', roles: ['web', 'cron'] }, w2: { host: 'b', roles: ['web', 'cron'] } });
    const err = failure(() => groupRoles(c, ['w1', 'w2'], plugins));
    assert.match(err.message, /nodes\.w2\.roles/);
    assert.match(err.message, /at most one node/);
  });

  it('refuses a service without a node of its role', () => {
    const c = config({ w1: { host: 'a', roles: ['web'] }, w2: { host: 'b', roles: ['web'] } });
    assert.match(failure(() => groupRoles(c, ['w1', 'w2'], plugins)).message, /the plugin postgres needs a node with the role postgres/);
  });

  it('refuses a private_host that is not an address or a host name', () => {
    for (const bad of ['10.0.0.1; drop', 'a b', '10.0.0.1/24', '$(id)']) {
      assert.equal(coreConfigSchema.safeParse({ domain: 'x.example', nodes: { w: { host: 'a', private_host: bad } } }).success, false, bad);
    }
    for (const good of ['10.0.0.11', 'fd00::11', 'db.internal']) {
      assert.equal(coreConfigSchema.safeParse({ domain: 'x.example', nodes: { w: { host: 'a', private_host: good } } }).success, true, good);
    }
  });

  it('private addresses: private_host, else what the node resolves to; one shared map for the group', async () => {
    const topology = await groupTopology(split, ['lb', 'web1', 'web2', 'db'], plugins, { privateHost: async (n) => `${n}.resolved` });
    const web1 = topology.get('web1')!;
    assert.deepEqual(
      web1.nodes.map((n) => [n.name, n.privateHost]),
      [
        ['lb', 'lb.resolved'],
        ['web1', 'web1.resolved'],
        ['web2', 'web2.resolved'],
        ['db', '10.0.0.5'],
      ],
    );
    assert.equal(web1.shared, topology.get('db')!.shared);
    assert.equal(web1.declared, true);
  });

  it("a plugin's taps run only on the nodes of its roles (the environment on every node)", async () => {
    const hooks = createHooks();
    interceptHooks(hooks, undefined, placementOf(plugins));
    hooks.configure.tap('postgres', (_c, tasks) => void tasks.add({ title: 'database', run: () => {} }));
    hooks.configure.tap('core', (_c, tasks) => void tasks.add({ title: 'core task', run: () => {} }));
    const topology = await groupTopology(split, ['lb', 'web1', 'web2', 'db'], plugins, { privateHost: async (n) => n });
    const titles = async (t: Topology) => (await collectTasks(hooks.configure, 'configure', { node: 'x', topology: t } as never)).sorted().map((x) => x.title);
    assert.deepEqual(await titles(topology.get('web1')!), ['core task']);
    assert.deepEqual(await titles(topology.get('db')!), ['database', 'core task']);
    assert.deepEqual(await titles(soloTopology('one')), ['database', 'core task']);
  });
});

describe('scheduled backups in a group split by role', () => {
  it('the cron node says which parts its backup lacks (the database is on the db node)', async () => {
    const { createSite } = await import('../../core/config/site.ts');
    const { configSchema } = await import('../helpers/config.ts');
    const { NodeProbe, RemoteFileSet } = await import('../../core/engine/context.ts');
    const { default: backups } = await import('../../plugins/backups/index.ts');
    const { default: files } = await import('../../plugins/files/index.ts');
    const all = [...plugins, backups, files];
    const nodes = {
      web1: { host: 'a', roles: ['web', 'worker'] },
      db: { host: 'b', roles: ['db'], private_host: '10.0.0.5' },
      production: ['web1', 'db'],
    };
    const site = createSite(configSchema.parse({ domain: 'shop.example', services: ['postgres', 'files'], backups: { schedule: '@daily' }, nodes }), {
      configFile: '/p/kraftwerk.yaml',
      sourceDir: '/p',
      name: 'shop',
    });
    const hooks = createHooks();
    interceptHooks(hooks, undefined, placementOf(all));
    for (const p of [postgres, backups, files]) p.apply!(hooks, site);
    const topology = await groupTopology(site.config, ['web1', 'db'], all, { privateHost: async (n) => `${n}.internal` });
    const warnings: string[] = [];
    const ctx = { site, node: 'web1', topology: topology.get('web1')!, files: new RemoteFileSet(), probe: new NodeProbe(), release: { id: 'r1', path: '/srv/shop/releases/r1', venv: '', deployer: 'me' }, log: { info() {}, warn: (m: string) => warnings.push(m) }, options: { dryRun: true, verbose: false, quiet: true }, state: new Map() };
    const task = (await collectTasks(hooks.configure, 'configure', ctx as never)).sorted().find((t) => t.title === 'backup script')!;
    await task.run(ctx as never, { output() {}, title() {}, skip() {} });
    assert.equal(warnings.length, 1, warnings.join('\n'));
    assert.match(warnings[0]!, /on web1 holds files; postgres is on other nodes/);
  });
});
