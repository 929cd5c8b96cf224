/**
 * The database node's renderers (issue 16): postgresql.conf and pg_hba lines,
 * the nftables guard, DATABASE_URL and REDIS_URL of the app nodes, and the
 * Redis settings. Hostile values must be refused, never written; the rest
 * must read back as exactly what was meant.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigValueError, KraftwerkError } from '../../core/index.ts';
import { EnvironmentVars } from '../../core/engine/context.ts';
import { createHooks } from '../../core/engine/hooks.ts';
import type { Plugin } from '../../core/engine/plugin.ts';
import { soloTopology } from '../../core/engine/topology.ts';
import postgresPlugin, { databaseUrl } from '../../plugins/postgres/index.ts';
import redisPlugin from '../../plugins/redis/index.ts';
import { testSite } from '../helpers/site.ts';
import { firewallAccepts, firewallDrop, FIREWALL_HEAD, FIREWALL_TAIL, hostCidr, parseSharedSecret, privateAddress } from '../../core/lifecycle/private-network.ts';
import { confString, hbaToken, networkDatabaseUrl, renderHbaFragment, renderNetworkConf } from '../../plugins/postgres/network.ts';
import { networkRedisUrl, renderRedisNetworkConf } from '../../plugins/redis/network.ts';

describe('private addresses', () => {
  it('takes IPv4 and IPv6 literals, brackets stripped, IPv6 in lower case', () => {
    assert.equal(privateAddress({ name: 'db', privateHost: '10.0.0.5' }), '10.0.0.5');
    assert.equal(privateAddress({ name: 'db', privateHost: '[FD00::5]' }), 'fd00::5');
    assert.equal(hostCidr('10.0.0.11'), '10.0.0.11/32');
    assert.equal(hostCidr('fd00::11'), 'fd00::11/128');
  });

  it('refuses a host name, a block, and anything with spaces or line breaks, naming the node and the key', () => {
    for (const bad of ['db.internal', '10.0.0.0/8', '10.0.0.5 ', '10.0.0.5\nhost all all 0.0.0.0/0 trust', '0/0', '']) {
      assert.throws(
        () => privateAddress({ name: 'db', privateHost: bad }),
        (e: unknown) => e instanceof KraftwerkError && /node db: private_host .* is not an IP address/.test(e.message) && /private_host: of db/.test(e.hint ?? ''),
        JSON.stringify(bad),
      );
    }
    assert.throws(() => hostCidr('10.0.0.0/8'), KraftwerkError);
  });
});

describe('postgresql.conf of a db node', () => {
  it('listens on localhost and the private address, TLS with the node certificate, its own pg_hba', () => {
    assert.equal(
      renderNetworkConf('10.0.0.5'),
      `# Kraftwerk: this node serves the databases of other nodes of its group.
listen_addresses = 'localhost,10.0.0.5'
ssl = on
ssl_cert_file = '/etc/kraftwerk/tls/node.crt'
ssl_key_file = '/etc/kraftwerk/tls/node.key'
ssl_min_protocol_version = 'TLSv1.2'
password_encryption = 'scram-sha-256'
hba_file = '/etc/kraftwerk/postgres/pg_hba.conf'
`,
    );
  });

  it("quotes strings as the server reads them back: ' and \\ doubled; a line break refused", () => {
    assert.equal(confString("it's"), "'it''s'");
    assert.equal(confString('a\\b'), "'a\\\\b'");
    assert.throws(() => confString("x'\nssl = off"), ConfigValueError);
    assert.throws(() => confString('x\0'), ConfigValueError);
  });
});

describe('pg_hba of a db node', () => {
  it('one hostssl line per app node address, scram-sha-256, names quoted', () => {
    assert.equal(
      renderHbaFragment({ database: 'shop', role: 'kw-shop' }, ['10.0.0.11', 'fd00::12']),
      `hostssl "shop" "kw-shop" 10.0.0.11/32 scram-sha-256
hostssl "shop" "kw-shop" fd00::12/128 scram-sha-256
`,
    );
  });

  it('a keyword as a name is only that name (quoted)', () => {
    assert.equal(hbaToken('all'), '"all"');
    assert.equal(hbaToken('replication'), '"replication"');
  });

  it('refuses hostile names and addresses instead of writing them', () => {
    for (const name of ['a"b', 'x\nhost all all 0.0.0.0/0 trust', '+group', '@file', '/^.*$', '', 'tab\there']) {
      assert.throws(() => renderHbaFragment({ database: name, role: 'kw-shop' }, ['10.0.0.11']), ConfigValueError, JSON.stringify(name));
      assert.throws(() => renderHbaFragment({ database: 'shop', role: name }, ['10.0.0.11']), ConfigValueError, JSON.stringify(name));
    }
    for (const address of ['0.0.0.0/0', '10.0.0.11 trust', 'all', 'samenet', '10.0.0.11\nhost all all 0.0.0.0/0 trust']) {
      assert.throws(() => renderHbaFragment({ database: 'shop', role: 'kw-shop' }, [address]), KraftwerkError, JSON.stringify(address));
    }
  });

  it('refuses a site with no app node (no line would let it in)', () => {
    assert.throws(() => renderHbaFragment({ database: 'shop', role: 'kw-shop' }, []), /no app node for the database shop/);
  });
});

describe('the nftables guard', () => {
  it('accepts each client address on the port, drops the rest, lets loopback in', () => {
    assert.equal(firewallAccepts(5432, ['10.0.0.11', 'fd00::12']), '    ip saddr 10.0.0.11 tcp dport 5432 accept\n    ip6 saddr fd00::12 tcp dport 5432 accept\n');
    assert.equal(firewallDrop(6379), '    tcp dport 6379 drop\n');
    assert.match(FIREWALL_HEAD, /iif "lo" accept/);
    assert.match(FIREWALL_HEAD, /^table inet kraftwerk_private\ndelete table inet kraftwerk_private\n/);
    assert.equal(FIREWALL_TAIL, '  }\n}\n');
  });

  it('refuses what is not one address or not a port', () => {
    for (const a of ['10.0.0.0/8', '10.0.0.11 accept', '10.0.0.11; flush ruleset', 'any']) assert.throws(() => firewallAccepts(5432, [a]), KraftwerkError, a);
    for (const p of [0, 70000, 1.5, Number.NaN]) assert.throws(() => firewallDrop(p), KraftwerkError, String(p));
  });
});

describe('URLs of the app nodes', () => {
  it('DATABASE_URL names the db node, verify-full against the copied certificate; the password is URL-encoded', () => {
    const url = networkDatabaseUrl({ database: 'shop', role: 'kw-shop' }, 'p@ss/w:rd', '10.0.0.5', '/etc/kraftwerk/db-ca/shop-postgres.crt');
    assert.equal(url, 'postgresql://kw-shop:p%40ss%2Fw%3Ard@10.0.0.5:5432/shop?sslmode=verify-full&sslrootcert=/etc/kraftwerk/db-ca/shop-postgres.crt');
    const parsed = new URL(url);
    assert.equal(decodeURIComponent(parsed.password), 'p@ss/w:rd');
    assert.equal(parsed.searchParams.get('sslrootcert'), '/etc/kraftwerk/db-ca/shop-postgres.crt');
    assert.equal(new URL(networkDatabaseUrl({ database: 'shop', role: 'kw-shop' }, 'x', 'fd00::5', '/c')).hostname, '[fd00::5]');
  });

  it('REDIS_URL is rediss:// to the db node with the certificate to verify against', () => {
    const url = networkRedisUrl('kw-shop', 'secret', '10.0.0.5', '/etc/kraftwerk/db-ca/shop-redis.crt');
    assert.equal(url, 'rediss://kw-shop:secret@10.0.0.5:6379/0?ssl_cert_reqs=required&ssl_check_hostname=true&ssl_ca_certs=/etc/kraftwerk/db-ca/shop-redis.crt');
  });

  it("the db node's answer: what it made, the password, the certificate", () => {
    const out = 'created the role password\nsomething else\n---secret---\nabc123\n---cert---\n-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----\n';
    assert.deepEqual(parseSharedSecret(out), { head: ['created the role password', 'something else'], secret: 'abc123', cert: '-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----\n' });
  });
});

describe('redis.conf of a db node', () => {
  it('binds loopback and the private address, TLS only on 6379 with the node certificate', () => {
    assert.equal(
      renderRedisNetworkConf('10.0.0.5'),
      `# Kraftwerk: this node serves Redis to other nodes of its group, over TLS only.
bind 127.0.0.1 -::1 10.0.0.5
port 0
tls-port 6379
tls-cert-file /etc/kraftwerk/tls/node.crt
tls-key-file /etc/kraftwerk/tls/node.key
tls-ca-cert-file /etc/kraftwerk/tls/node.crt
tls-auth-clients no
tls-protocols "TLSv1.2 TLSv1.3"
`,
    );
  });

  it('refuses an address that is not one IP literal', () => {
    for (const a of ['10.0.0.5 0.0.0.0', '10.0.0.5\nport 6380', '*', '']) assert.throws(() => renderRedisNetworkConf(a), KraftwerkError, JSON.stringify(a));
  });
});

describe("the app nodes' environment in a group split by roles", () => {
  const site = testSite();
  const db = { name: 'db', roles: new Set(['db', 'postgres', 'redis']), privateHost: '10.0.0.5' };
  const web = { name: 'web1', roles: new Set(['web', 'worker', 'cron']), privateHost: '10.0.0.11' };
  const topology = (me: typeof web, nodes = [web, db]) => ({ roles: me.roles, nodes, declared: true, shared: new Map<string, unknown>() });
  async function environmentOf(plugin: Plugin, top: ReturnType<typeof topology>, previous: Record<string, string> = {}) {
    const hooks = createHooks();
    plugin.apply!(hooks, site);
    const env = new EnvironmentVars();
    await hooks.environment.promise({ site, node: 'web1', topology: top, previous }, env);
    return Object.fromEntries([...env.vars].map(([k, v]) => [k, v.value]));
  }

  it('without a node on its own, the database is the local one, as on a single server', async () => {
    const env = await environmentOf(postgresPlugin, { roles: soloTopology('n1').roles, nodes: soloTopology('n1').nodes, declared: false, shared: new Map() } as never);
    assert.equal(env.DATABASE_URL, databaseUrl(site));
  });

  it('keeps the URL the node has when the db node did not answer in this command (env, a fingerprint), and nothing else', async () => {
    const ours = `postgresql://${site.user}:pw@10.0.0.5:5432/${site.name}?sslmode=verify-full&sslrootcert=/x`;
    assert.equal((await environmentOf(postgresPlugin, topology(web), { DATABASE_URL: ours })).DATABASE_URL, ours);
    assert.equal((await environmentOf(postgresPlugin, topology(web))).DATABASE_URL, undefined, 'no URL is made up before the db node made the password');
    const elsewhere = ours.replace('10.0.0.5', '10.9.9.9');
    assert.equal((await environmentOf(postgresPlugin, topology(web), { DATABASE_URL: elsewhere })).DATABASE_URL, undefined, 'a URL of another host is not ours');
    const redis = `rediss://${site.user}:pw@10.0.0.5:6379/0?ssl_cert_reqs=required`;
    assert.equal((await environmentOf(redisPlugin, topology(web), { REDIS_URL: redis })).REDIS_URL, redis);
  });

  it('refuses a db node whose private_host is a name, naming the node', async () => {
    const named = { ...db, privateHost: 'db.internal' };
    await assert.rejects(environmentOf(postgresPlugin, topology(web, [web, named])), /node db: private_host "db\.internal" is not an IP address/);
  });

  it('refuses two nodes with the role: no replication is set up', async () => {
    const db2 = { ...db, name: 'db2', privateHost: '10.0.0.6' };
    await assert.rejects(environmentOf(postgresPlugin, topology(web, [web, db, db2])), /nodes db, db2 all have role postgres; a group has one/);
  });
});
