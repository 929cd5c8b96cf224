// Where a node stands in a group with a load balancer (plugins/lb/topology.ts), from the topology core
// makes of kraftwerk.yaml's roles: a single node and a group without roles are "as before" everywhere.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { groupTopology, soloTopology } from '../../core/engine/topology.ts';
import { facesClients, isLoadBalancer, loadBalancers, siteLayout, DRAINED_STATE } from '../../plugins/lb/topology.ts';
import type { Config } from '../../core/config/schema.ts';

const addresses: Record<string, string> = { lb: '10.0.0.2', web1: '10.0.0.11', web2: '10.0.0.12', all: '10.0.0.20' };

async function placed(nodes: Record<string, unknown>, group: string[]) {
  const topologies = await groupTopology({ nodes } as unknown as Config, group, [], { privateHost: async (n) => addresses[n]! });
  return (node: string, state = new Map<string, unknown>()) => ({ node, topology: topologies.get(node)!, state });
}

describe('lb: each node\'s place', () => {
  it('a single node: no load balancer, clients arrive at it, its site file as always', () => {
    const ctx = { node: 'n1', topology: soloTopology('n1'), state: new Map() };
    assert.equal(isLoadBalancer(ctx), false);
    assert.equal(facesClients(ctx), true);
    assert.equal(siteLayout(ctx), undefined);
  });

  it('lb + two web nodes: the lb proxies to both (drained ones down), the web nodes listen privately and trust the lb', async () => {
    const at = await placed(
      { lb: { host: 'lb', roles: ['lb'] }, web1: { host: 'web1', roles: ['web'] }, web2: { host: 'web2', roles: ['web'] } },
      ['lb', 'web1', 'web2'],
    );
    assert.deepEqual(loadBalancers(at('web1')).map((n) => n.name), ['lb']);
    assert.equal(facesClients(at('lb')), true);
    assert.equal(facesClients(at('web1')), false, 'TLS ends on the lb');
    assert.deepEqual(siteLayout(at('lb')), { proxy: { servers: [{ address: '10.0.0.11', down: false }, { address: '10.0.0.12', down: false }] } });
    assert.deepEqual(siteLayout(at('lb', new Map([[DRAINED_STATE, new Set(['web2'])]]))), {
      proxy: { servers: [{ address: '10.0.0.11', down: false }, { address: '10.0.0.12', down: true }] },
    });
    assert.deepEqual(siteLayout(at('web2')), { behind: { listen: ['10.0.0.12'], loadBalancers: ['10.0.0.2'] } });
  });

  it('a node without roles in a split group has every role: a web node, not a load balancer', async () => {
    const at = await placed({ all: { host: 'all' }, web1: { host: 'web1', roles: ['web'] } }, ['all', 'web1']);
    assert.equal(isLoadBalancer(at('all')), false);
    assert.deepEqual(loadBalancers(at('web1')), []);
    assert.equal(siteLayout(at('all')), undefined);
    assert.equal(facesClients(at('all')), true);
  });
});
