// Every collector a plugin is handed records the plugin's name itself (as TaskList does):
// a plugin cannot add in another's name, and what it adds is reported as its own.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createHooks, definePlugin, LogSources, NodeStatusParts, SetupPackages, sh, StatusReport, TaskList } from '../../core/index.ts';
import { interceptHooks } from '../../core/engine/hooks.ts';
import { collectFromPlugins } from '../../core/engine/registry.ts';
import { configSchema } from '../helpers/config.ts';
import { createSite } from '../../core/config/site.ts';
import type { NodeContext, SetupContext } from '../../core/index.ts';

const site = createSite(configSchema.parse({ domain: 'example.com' }), { configFile: '/p/kraftwerk.yaml', sourceDir: '/p', name: 'shop' });
const ctx = { site, node: 'n1', state: new Map() } as unknown as NodeContext & SetupContext;

describe('collectors are scoped by plugin', () => {
  it('setup packages and status lines are recorded as the tapping plugin\'s', async () => {
    const hooks = createHooks();
    interceptHooks(hooks);
    const plugin = definePlugin({
      name: 'mine',
      apply(h) {
        h.setupNode.tap('mine', (_c, _t, packages) => void packages.add('jq'));
        h.status.tap('mine', (_c, report) => void report.add('answer', 42));
      },
    });
    plugin.apply!(hooks, site);
    const packages = new SetupPackages().add('rsync');
    await hooks.setupNode.promise(ctx, new TaskList('setupNode'), packages);
    assert.deepEqual(packages.names, ['rsync', 'jq']);
    assert.equal((packages as unknown as { packages: Map<string, string> }).packages.get('jq'), 'mine');
    const report = new StatusReport();
    await hooks.status.promise(ctx, report);
    assert.deepEqual(report.values, { mine: { answer: 42 } });
  });

  it('status parts and log sources are recorded as the declaring plugin\'s; a taken status key names both', () => {
    const a = definePlugin({
      name: 'a',
      nodeStatus: (s) => void s.site({ keys: ['thing'], script: sh`echo thing`, read: () => {} }),
      logs: (l) => void l.add({ command: () => sh`true` }),
    });
    const parts = collectFromPlugins([a], 'nodeStatus', new NodeStatusParts(), site);
    assert.deepEqual(parts.siteParts.map((p) => p.plugin), ['a']);
    assert.equal(collectFromPlugins([a], 'logs', new LogSources(), site).find()?.plugin, 'a');
    const b = definePlugin({ name: 'b', nodeStatus: (s) => void s.site({ keys: ['thing'], script: sh`echo`, read: () => {} }) });
    assert.throws(() => collectFromPlugins([a, b], 'nodeStatus', new NodeStatusParts(), site), /b failed in nodeStatus: plugin b: the status key "thing" is a's/);
    const c = definePlugin({ name: 'c', nodeStatus: (s) => void s.process('x', 'x').site({ keys: ['release'], script: sh`echo`, read: () => {} }) });
    assert.throws(() => collectFromPlugins([c], 'nodeStatus', new NodeStatusParts(), site), /the status key "release" is core's/);
  });
});
