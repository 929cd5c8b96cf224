import assert from 'node:assert/strict';
import { soloTopology } from '../../core/engine/topology.ts';
import { describe, it } from 'node:test';
import { EnvironmentVars } from '../../core/engine/context.ts';
import { PluginError } from '../../core/errors.ts';
import { collectTasks, createHooks, interceptHooks } from '../../core/engine/hooks.ts';
import { definePlugin } from '../../core/engine/plugin.ts';
import { Stage } from '../../core/engine/tasks.ts';
import type { Site } from '../../core/config/site.ts';

const site = {} as Site;
const ctx = { node: 'web1' } as never;

describe('hooks', () => {
  it('orders tasks by stage, then by the order plugins were applied', async () => {
    const hooks = createHooks();
    interceptHooks(hooks);
    const plugins = [
      definePlugin({
        name: 'late',
        apply: (h) =>
          h.configure.tap('late', (_c, t) => {
            t.add({ title: 'reload', stage: Stage.RELOAD, run: () => {} });
            t.add({ title: 'render', run: () => {} });
          }),
      }),
      definePlugin({
        name: 'early',
        apply: (h) =>
          h.configure.tap('early', (_c, t) => {
            t.add({ title: 'create db', stage: Stage.PREPARE, run: () => {} });
            t.add({ title: 'render', run: () => {} });
          }),
      }),
    ];
    for (const p of plugins) p.apply!(hooks, site);
    const list = await collectTasks(hooks.configure, 'configure', ctx);
    assert.deepEqual(
      list.sorted().map((t) => `${t.plugin}:${t.title}`),
      ['early:create db', 'late:render', 'early:render', 'late:reload'],
    );
  });

  it('records which plugin added each task, also for async taps', async () => {
    const hooks = createHooks();
    interceptHooks(hooks);
    hooks.sync.tapPromise('rsync-plus', async (_c, t) => {
      await new Promise((r) => setTimeout(r, 1));
      t.add({ title: 'x', run: () => {} });
    });
    const list = await collectTasks(hooks.sync, 'sync', ctx);
    assert.equal(list.sorted()[0]!.plugin, 'rsync-plus');
    assert.equal(list.sorted()[0]!.hook, 'sync');
  });

  it('reports a failing tap as "<plugin> failed in <hook> on <node>: <cause>"', async () => {
    const hooks = createHooks();
    interceptHooks(hooks);
    hooks.install.tap('broken', () => {
      throw new Error('no pip here');
    });
    await assert.rejects(collectTasks(hooks.install, 'install', ctx), (err: unknown) => {
      assert.ok(err instanceof PluginError);
      assert.equal(err.message, 'broken failed in install on web1: no pip here');
      return true;
    });
    const hooks2 = createHooks();
    interceptHooks(hooks2);
    hooks2.restart.tapPromise('async-broken', async () => {
      throw new Error('boom');
    });
    await assert.rejects(collectTasks(hooks2.restart, 'restart', ctx), /async-broken failed in restart on web1: boom/);
  });

  it('gives each plugin an environment collector that records its name', async () => {
    const hooks = createHooks();
    interceptHooks(hooks);
    hooks.environment.tap('postgres', (_c, env) => env.set('DATABASE_URL', 'postgresql:///site'));
    hooks.environment.tap('redis', (_c, env) => env.set('REDIS_URL', 'redis://u:p@127.0.0.1/0', { secret: true }));
    const env = new EnvironmentVars();
    await hooks.environment.promise({ site, node: 'web1', topology: soloTopology('web1'), previous: {} }, env);
    assert.deepEqual(env.toRecord(), { DATABASE_URL: 'postgresql:///site', REDIS_URL: 'redis://u:p@127.0.0.1/0' });
    assert.equal(env.vars.get('REDIS_URL')!.plugin, 'redis');
    assert.equal(env.vars.get('REDIS_URL')!.secret, true);
  });
});
