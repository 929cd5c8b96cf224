/**
 * The deploy lifecycle's extension points: the switch and its undo run what the
 * stack plugins contribute (core names no stack component), in the switch's own
 * command and in the order the plugins were applied; a failing tap names its plugin.
 * The health check asks over HTTPS when a plugin says so (tls, once the site has a certificate).
 */
import { soloTopology } from '../../core/engine/topology.ts';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { configSchema } from '../helpers/config.ts';
import { type DeployContext, NodeProbe, RemoteFileSet } from '../../core/engine/context.ts';
import { createHooks, interceptHooks, lifecycleHooks } from '../../core/engine/hooks.ts';
import { definePlugin, type Plugin } from '../../core/engine/plugin.ts';
import { PluginError } from '../../core/errors.ts';
import { corePlugin } from '../../core/lifecycle/core-plugin.ts';
import { emptyFacts } from '../../core/lifecycle/probe.ts';
import { collectSwitchSteps, switchCommand, SWITCHED_MARKER, undoReleaseCommand } from '../../core/lifecycle/switch.ts';
import { createSite } from '../../core/config/site.ts';
import { sh } from '../../core/shell/sh.ts';
import uwsgi from '../../plugins/uwsgi/index.ts';
import runit from '../../plugins/runit/index.ts';
import { retireOtherSlotsCommand, stopUnswitchedSlotCommand } from '../../plugins/uwsgi/slots.ts';
import { removeLegacyServiceCommand } from '../../plugins/runit/commands.ts';
import tls from '../../plugins/tls/index.ts';
import { setSiteTls } from '../../plugins/tls/state.ts';
import { healthCheckCommand, healthCheckRequest } from '../../core/lifecycle/healthcheck.ts';

const site = createSite(configSchema.parse({ domain: 'example.com' }), { configFile: '', sourceDir: '/tmp', name: 'demo' });

function deployContext(id: string): DeployContext {
  return {
    site,
    node: 'web1',
    remote: undefined as never,
    options: { dryRun: false, verbose: false, quiet: true },
    log: { info() {}, warn() {} },
    state: new Map(),
    topology: soloTopology('web1'),
    release: { id, path: `${site.paths.releases}/${id}`, venv: '', deployer: 'me' },
    deploy: { upgradePackages: false, lockWaitMs: 0 },
    probe: new NodeProbe(),
    facts: emptyFacts(),
    env: {},
    files: new RemoteFileSet(),
  };
}

function applied(...plugins: Plugin[]) {
  const hooks = createHooks();
  interceptHooks(hooks);
  for (const p of [corePlugin, ...plugins]) p.apply?.(hooks, site);
  return hooks;
}

describe('switch steps', () => {
  it('the switch runs the stack plugins\' steps after the rename, in the order the plugins were applied', async () => {
    const ctx = deployContext('20261201T000000Z');
    const steps = await collectSwitchSteps(applied(uwsgi, runit), ctx);
    assert.deepEqual(steps.afterSwitchScripts.map((s) => s.plugin), ['uwsgi', 'runit']);
    const text = switchCommand(site, ctx.release.id, 'token', steps).text;
    const afterMarker = text.slice(text.indexOf(`echo '${SWITCHED_MARKER}'`));
    const retire = afterMarker.indexOf(retireOtherSlotsCommand(site, ctx.release.path).text);
    const legacy = afterMarker.indexOf(removeLegacyServiceCommand(site).text);
    assert.ok(retire > 0 && legacy > retire, 'slots retire, then the service of a Kraftwerk before slots goes, both after the switch');
    assert.match(text, /^trap '' HUP INT TERM PIPE\n/, 'the steps run with signals ignored, like the rename');
  });

  it('core alone switches and undoes without any stack step', async () => {
    const ctx = deployContext('20261201T000000Z');
    const steps = await collectSwitchSteps(applied(), ctx);
    assert.ok(switchCommand(site, ctx.release.id, 'token', steps).text.endsWith(`echo '${SWITCHED_MARKER}'`));
    assert.doesNotMatch(undoReleaseCommand(site, ctx.release.id, 'token', { remove: false }, steps).text, /\/etc\/sv|sv down/);
  });

  it('the undo of a release that did not go live stops its slot, after checking the lock is still ours', async () => {
    const ctx = deployContext('20261201T000001Z');
    const steps = await collectSwitchSteps(applied(uwsgi, runit), ctx);
    const text = undoReleaseCommand(site, ctx.release.id, 'tok123', { remove: true }, steps).text;
    const stop = text.indexOf(stopUnswitchedSlotCommand(site, ctx.release.path).text);
    assert.ok(text.indexOf('grep -q tok123') === 0 && stop > 0, 'the lock check comes first, then the slot stops');
    assert.ok(text.indexOf('echo removed') > stop);
  });

  it('a project-local plugin contributes the same way; a failing tap names its plugin and the extension point', async () => {
    const local = definePlugin({
      name: 'local',
      apply(hooks) {
        lifecycleHooks(hooks).switch.tap('local', (_ctx, s) => {
          s.afterSwitch(sh`echo local`);
        });
      },
    });
    const ctx = deployContext('20261201T000002Z');
    const steps = await collectSwitchSteps(applied(local), ctx);
    assert.deepEqual(steps.afterSwitchScripts.map((s) => [s.plugin, s.script.text]), [['local', 'echo local']]);

    const broken = definePlugin({
      name: 'broken',
      apply(hooks) {
        lifecycleHooks(hooks).switch.tap('broken', () => {
          throw new Error('no');
        });
      },
    });
    await assert.rejects(collectSwitchSteps(applied(broken), ctx), (err: unknown) => {
      assert.ok(err instanceof PluginError);
      assert.equal(err.message, 'broken failed in switch on web1: no');
      return true;
    });
  });
});

describe('health check request', () => {
  it('is plain HTTP unless a plugin asks for HTTPS: tls does once the node has a certificate for the site', async () => {
    const hooks = applied(uwsgi, runit, tls);
    const ctx = deployContext('20261201T000003Z');
    assert.deepEqual(await healthCheckRequest(applied(), ctx), { https: false });
    assert.deepEqual(await healthCheckRequest(hooks, ctx), { https: false }, 'tls without a certificate: HTTP');
    setSiteTls(ctx, { hstsMaxAge: 0, protocols: ['TLSv1.3'], ciphers: '', certificate: { fullchain: '/f', privateKey: '/k' } });
    const request = await healthCheckRequest(hooks, ctx);
    assert.deepEqual(request, { https: true });
    assert.match(healthCheckCommand(site, request).text, /--resolve example\.com:443:127\.0\.0\.1 -k https:\/\/example\.com\//);
  });
});
