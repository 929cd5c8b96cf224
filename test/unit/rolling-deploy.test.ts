// Rolling deploys through core's `traffic` extension point, without a server: the real `deployCommand`
// with recording Remotes (test/helpers/recording-remote.ts) and a project-local plugin that balances
// the group's nodes, drains and undrains with a marker command each (on the node it balances from).
//   (i)   one node at a time: drain, switch, health check, undrain, then the next node;
//   (ii)  a node that fails its health check stops the roll: it and the nodes before it go back,
//         it is put back into the traffic, the nodes after it never switch;
//   (iii) --all-at-once: the group switch, nothing drained;
//   (iv)  a single balanced node is not drained;
//   (v)   the lb plugin in a group with roles: the lb goes live first, each web node is marked down in
//         the lb's site file before its switch and health-checked at its private address; release
//         commands run once, on the first web node, before any switch.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { deployCommand } from '../../core/cli/actions/deploy.ts';
import { fakeNodes, installRsyncShim, LIVE, quiet, RecordingKit, SITE, type Effect } from '../helpers/recording-remote.ts';
import { tempProject } from '../helpers/cli.ts';

const BALANCER = `import { definePlugin, lifecycleHooks, sh } from 'kraftwerk';
export default definePlugin({
  name: 'balancer',
  apply(hooks) {
    lifecycleHooks(hooks).traffic.tap('balancer', (ctx, traffic) => {
      if (ctx.node !== 'front') return;
      traffic.balance(['web1', 'web2', 'web3'], {
        drain: async (node) => void (await ctx.remote.exec(sh\`: drain \${node.node}\`)),
        undrain: async (node) => void (await ctx.remote.exec(sh\`: undrain \${node.node}\`)),
      });
    });
  },
});
`;

function project(): string {
  return tempProject({
    'app.py': 'def application(environ, start_response):\n    start_response("200 OK", [])\n    return [b"hi"]\n',
    'requirements.txt': '',
    'balancer.ts': BALANCER,
    'kraftwerk.yaml': `domain: orch.example.com\npackage: ${SITE}\nwsgi: app\nplugins: [./balancer.ts]\nnodes:\n  front: front.example.invalid\n  web1: web1.example.invalid\n  web2: web2.example.invalid\n  web3: web3.example.invalid\n  all: [front, web1, web2, web3]\n  pair: [front, web1]\n`,
  });
}

/** The steps of the roll as they happened: drains and undrains (run on front), switches and health checks (on each node). */
function steps(effects: Effect[]): string[] {
  const out: string[] = [];
  for (const e of effects) {
    if (e.op !== 'exec') continue;
    const traffic = /^: (drain|undrain) (\S+)$/.exec(e.text);
    if (traffic) out.push(`${traffic[1]} ${traffic[2]}`);
    else if (e.text.includes('kraftwerk: switched')) out.push(`switch ${e.node}${/ln -sn releases\/(\S+) /.exec(e.text)?.[1] === LIVE ? ' back' : ''}`);
    else if (e.text.includes("-w '%{http_code}'")) out.push(`check ${e.node}`);
  }
  return out;
}

let shim: ReturnType<typeof installRsyncShim>;
before(() => (shim = installRsyncShim()));
after(() => shim.restore());

const NODES = ['front', 'web1', 'web2', 'web3'] as const;

describe('rolling deploys (the traffic extension point)', () => {
  it('(i) drains, switches, checks and undrains one node at a time, after the nodes it does not balance', async () => {
    const fake = fakeNodes(...NODES);
    const kit = new RecordingKit(quiet, project(), fake);
    await deployCommand(kit, 'all', {});
    assert.deepEqual(steps(kit.effects), [
      'switch front',
      'check front',
      'drain web1',
      'switch web1',
      'check web1',
      'undrain web1',
      'drain web2',
      'switch web2',
      'check web2',
      'undrain web2',
      'drain web3',
      'switch web3',
      'check web3',
      'undrain web3',
    ]);
    for (const n of NODES) assert.equal(fake.get(n)!.lockToken, undefined, `${n}: the lock is released`);
  });

  it('(ii) a failed health check stops the roll: the switched nodes go back, the failed one takes requests again, the rest never switch', async () => {
    const fake = fakeNodes(...NODES);
    fake.get('web2')!.newReleaseBroken = true;
    const kit = new RecordingKit(quiet, project(), fake);
    await assert.rejects(deployCommand(kit, 'all', {}), (err: Error & { hint?: string }) => {
      assert.match(err.message, /failed on web2: .*health check failed/);
      assert.match(err.hint ?? '', /Rolled back: front → 20200101T000000Z, web1 → 20200101T000000Z, web2 → 20200101T000000Z\./);
      assert.match(err.hint ?? '', /The roll stopped: web3 kept the previous release\./);
      return true;
    });
    const seen = steps(kit.effects);
    assert.deepEqual(seen.slice(0, 9), ['switch front', 'check front', 'drain web1', 'switch web1', 'check web1', 'undrain web1', 'drain web2', 'switch web2', 'check web2']);
    const rest = seen.slice(9);
    for (const n of ['front', 'web1', 'web2']) assert.ok(rest.includes(`switch ${n} back`), `${n} is rolled back: ${rest.join(', ')}`);
    // The balancer goes back last: until then, no request reaches a node still on the failed release.
    assert.ok(rest.indexOf('switch front back') > Math.max(rest.indexOf('switch web1 back'), rest.indexOf('switch web2 back')), `front goes back last: ${rest.join(', ')}`);
    assert.equal(rest.at(-1), 'undrain web2', `web2 takes requests again once it serves the previous release: ${rest.join(', ')}`);
    assert.ok(!seen.some((s) => s.endsWith('web3')), `web3 was never drained nor switched: ${seen.join(', ')}`);
    for (const n of NODES) assert.equal(fake.get(n)!.current, LIVE, `${n} serves the previous release`);
    assert.deepEqual(fake.get('web3')!.switches, []);
  });

  it('(iii) --all-at-once switches the group together and drains nothing', async () => {
    const fake = fakeNodes(...NODES);
    const kit = new RecordingKit(quiet, project(), fake);
    await deployCommand(kit, 'all', { allAtOnce: true });
    const seen = steps(kit.effects);
    assert.ok(!seen.some((s) => /drain/.test(s)), seen.join(', '));
    for (const n of NODES) assert.equal(fake.get(n)!.switches.length, 1, `${n} switched once`);
  });

  it('(iv) a single node behind a balancer is not drained (no other node would serve)', async () => {
    const fake = fakeNodes('front', 'web1');
    const kit = new RecordingKit(quiet, project(), fake);
    await deployCommand(kit, 'pair', {});
    const seen = steps(kit.effects);
    assert.ok(!seen.some((s) => /drain/.test(s)), seen.join(', '));
    assert.equal(fake.get('web1')!.switches.length, 1);
  });
});

describe('rolling deploys behind the lb plugin (a group with roles)', () => {
  it('(v) drains each web node in the lb\'s upstream, checks it at its private address; migrations once, on web1, before any switch', async () => {
    const dir = tempProject({
      'app.py': 'def application(environ, start_response):\n    start_response("200 OK", [])\n    return [b"hi"]\n',
      'requirements.txt': '',
      'kraftwerk.yaml': [
        'domain: orch.example.com',
        `package: ${SITE}`,
        'wsgi: app',
        'release:\n  - ./migrate',
        'nodes:',
        '  lb: { host: lb.example.invalid, roles: [lb], private_host: 10.0.0.2 }',
        '  web1: { host: web1.example.invalid, roles: [web], private_host: 10.0.0.11 }',
        '  web2: { host: web2.example.invalid, roles: [web], private_host: 10.0.0.12 }',
        '  production: [lb, web1, web2]',
        '',
      ].join('\n'),
    });
    const fake = fakeNodes('lb', 'web1', 'web2');
    const kit = new RecordingKit(quiet, dir, fake);
    await deployCommand(kit, 'production', {});
    const lbSite = '/etc/nginx/sites-available/kraftwerk-orch.conf';
    const seen: string[] = [];
    for (const e of kit.effects) {
      if (e.op === 'exec' && e.text.includes('./migrate')) seen.push(`migrate ${e.node}`);
      else if (e.op === 'exec' && e.text.includes('kraftwerk: switched')) seen.push(`switch ${e.node}`);
      else if (e.op === 'exec' && e.text.includes("-w '%{http_code}'")) seen.push(`check ${e.node} ${/http:\/\/([^/]+)\//.exec(e.text)?.[1]}`);
      else if (e.op === 'syncFiles' && e.node === 'lb') {
        const file = e.files?.find((f) => f.path === lbSite);
        if (!file) continue;
        const down = [...file.content.matchAll(/server (\S+):80 max_fails=3 fail_timeout=10s down;/g)].map((m) => m[1]);
        seen.push(`lb upstream down: ${down.join(',') || 'none'}`);
      }
    }
    assert.deepEqual(seen, [
      'migrate web1',
      'switch lb',
      'lb upstream down: 10.0.0.11',
      'switch web1',
      'check web1 10.0.0.11',
      'lb upstream down: none',
      'lb upstream down: 10.0.0.12',
      'switch web2',
      'check web2 10.0.0.12',
      'lb upstream down: none',
    ]);
    // The lb has no virtualenv: its switch links none (ln -s '' would fail and stop the deploy there).
    const lbSwitch = kit.effects.find((e) => e.node === 'lb' && e.op === 'exec' && e.text.includes('kraftwerk: switched'))!;
    assert.doesNotMatch(lbSwitch.text, /ln -sfn '' /);
    for (const n of ['lb', 'web1', 'web2']) assert.equal(fake.get(n)!.lockToken, undefined, `${n}: the lock is released`);
  });
});
