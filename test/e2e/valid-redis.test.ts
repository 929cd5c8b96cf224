/**
 * Redis and PostgreSQL between two sites on one node (issue 12, item 5): site
 * B's own code, run with `kraftwerk run`, tries to reach site A's keys,
 * channels and database and Redis' node-wide state (SCAN, FUNCTION FLUSH,
 * FLUSHALL, CONFIG, …); every attempt is refused, while B's normal use of
 * Redis through redis-py (pipelines, pub/sub on its own channels, EXPIRE,
 * Lua, locks) and A's example app (/redis, /db) keep working. A node whose
 * site user still has the old, wide ACL is narrowed by the next deploy.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { REPO_ROOT, runCli, sandboxSkip, withPreparedSandbox, type CliResult } from './harness.ts';
import { onNode, printed, setupRecipe } from './safe-helpers.ts';

const NODE = 'valid-redis';
/** Site A: the Flask example, named after its folder. */
const A = { name: 'flask-hello', domain: 'flask-hello.test' };
/** Site B: the fixture whose code attacks A. */
const B = { name: 'validb', domain: 'validb.test' };
const FIXTURE = path.join(REPO_ROOT, 'test', 'fixtures', 'apps', 'valid-redis');

/** The ACL of the version before the allow-list, as a node deployed by it still has it. */
const OLD_RULES = '+@all -@dangerous -@admin';

/** What B's code tries (attack.py prints one outcome per name); each must be refused. */
const REDIS_ATTACKS = [
  'GET other key',
  'SET other key',
  'SCAN',
  'SCAN MATCH other',
  'KEYS',
  'KEYS own pattern',
  'RANDOMKEY',
  'DBSIZE',
  'FLUSHALL',
  'FLUSHDB',
  'SWAPDB',
  'FUNCTION LOAD',
  'FUNCTION DELETE',
  'FUNCTION FLUSH',
  'FUNCTION LIST',
  'FUNCTION RESTORE',
  'FCALL',
  'SCRIPT FLUSH',
  'SCRIPT KILL',
  'EVAL on other key',
  'EVAL KEYS',
  'CONFIG GET',
  'CONFIG SET',
  'INFO',
  'PUBSUB CHANNELS',
  'PUBSUB NUMSUB',
  'PUBLISH other channel',
  'SUBSCRIBE other channel',
  'PSUBSCRIBE *',
  'CLIENT LIST',
  'CLIENT KILL',
  'CLIENT TRACKING BCAST',
  'OBJECT',
  'DEBUG',
  'MIGRATE',
  'WAIT',
  'MONITOR',
  'SORT BY other keys',
  'ACL LIST',
  'ACL SETUSER',
];
const DATABASE_ATTACKS = ['connect to the other database', 'connect as the other role'];

function project(t: TestContext, from: string, folder: string): string {
  const parent = mkdtempSync(path.join(tmpdir(), 'kw-valid-'));
  t.after(() => rmSync(parent, { recursive: true, force: true }));
  const dir = path.join(parent, folder);
  mkdirSync(dir);
  cpSync(from, dir, { recursive: true });
  return dir;
}

function http(address: string, host: string, urlPath: string): Promise<{ status?: number; body: string }> {
  return new Promise((resolve) => {
    const req = request({ host: address, port: 80, path: urlPath, headers: { Host: host }, agent: false, timeout: 30_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 30 s')));
    req.on('error', (e) => resolve({ body: `error: ${e.message}` }));
    req.end();
  });
}

async function cliOk(args: string[], cwd: string): Promise<CliResult> {
  const r = await runCli(args, { cwd, timeoutMs: 20 * 60_000 });
  assert.equal(r.code, 0, `kraftwerk ${args.join(' ')}:\n${printed(r)}`);
  return r;
}

/** B's attack.py against A, run as B's own code; its outcomes by attempt. */
async function attack(dirB: string): Promise<Record<string, string>> {
  const r = await cliOk(['run', NODE, '--', 'python', 'attack.py', A.name], dirB);
  const line = r.stdout.trim().split('\n').at(-1) ?? '';
  return JSON.parse(line) as Record<string, string>;
}

/** Redis as Kraftwerk's admin user, on the node. */
const adminCli = `REDISCLI_AUTH="$(cat /etc/kraftwerk/redis-admin.secret)" redis-cli --no-auth-warning --user kraftwerk`;

describe('Redis and PostgreSQL between two sites on one node', { skip: sandboxSkip() }, () => {
  it('site B reaches its own keys only', { timeout: 60 * 60_000 }, async (t) => {
    const dirA = project(t, path.join(REPO_ROOT, 'examples', 'flask-hello'), A.name);
    const dirB = project(t, FIXTURE, 'valid-redis-b');
    await withPreparedSandbox(t, NODE, setupRecipe(), async (sandbox) => {
      await cliOk(['setup-node', NODE], dirA);
      await cliOk(['deploy', NODE], dirA);
      await cliOk(['deploy', NODE], dirB);
      const address = sandbox.address;

      await t.test("A's example app uses its Redis counter and database", async () => {
        const first = await http(address, A.domain, '/redis');
        assert.equal(first.status, 200, first.body);
        const second = await http(address, A.domain, '/redis');
        assert.equal(Number(/counter=(\d+)/.exec(second.body)?.[1]), Number(/counter=(\d+)/.exec(first.body)?.[1]) + 1, second.body);
        const db = await http(address, A.domain, '/db');
        assert.match(db.body, /visits=\d+ user=kw-flask-hello database=flask-hello/);
      });

      await t.test("B's own use of Redis through redis-py works (pipeline, pub/sub, EXPIRE, Lua, lock)", async () => {
        const r = await http(address, B.domain, '/redis');
        assert.equal(r.status, 200, r.body);
        const steps = JSON.parse(r.body) as Record<string, string>;
        for (const step of ['set/get', 'incr', 'expire/ttl', 'hash/list/set/zset', 'delete/exists', 'pipeline', 'pubsub', 'eval', 'register_script', 'lock']) {
          assert.ok(steps[step] !== undefined && !steps[step]!.startsWith('FAILED'), `${step}: ${steps[step]}\n${r.body}`);
        }
      });

      const outcomes = await attack(dirB);
      await t.test("B's code is refused everything outside its keys and channels", async (st) => {
        for (const name of REDIS_ATTACKS) {
          await st.test(name, () => {
            assert.match(outcomes[name] ?? 'not tried', /^refused: (NoPermissionError|ResponseError): /, `${name}: ${outcomes[name]}`);
          });
        }
        for (const name of DATABASE_ATTACKS) {
          await st.test(name, () => {
            assert.match(outcomes[name] ?? 'not tried', /^refused: OperationalError: /, `${name}: ${outcomes[name]}`);
          });
        }
      });

      await t.test("A's keys and functions are still there after B's attempts", async () => {
        const value = await onNode(NODE, `${adminCli} GET ${A.name}:counter`);
        assert.match(value.trim(), /^\d+$/, `A's counter: ${value}`);
        const r = await http(address, A.domain, '/redis');
        assert.match(r.body, /counter=\d+/);
      });

      await t.test('a site user with the old wide ACL is narrowed by the next deploy', async () => {
        // What a node deployed by the earlier version has: the wide rules, and that version's marker.
        await onNode(NODE, `${adminCli} ACL SETUSER kw-${B.name} ${OLD_RULES} >/dev/null && echo old > /srv/${B.name}/.kraftwerk/provisioned/redis`);
        const before = await attack(dirB);
        assert.match(before.SCAN ?? '', /^allowed: /, `with the old ACL SCAN is open (else this test proves nothing): ${before.SCAN}`);
        // The same Kraftwerk and project: only --force deploys (an upgrade of Kraftwerk changes the fingerprint itself).
        const deploy = await cliOk(['deploy', NODE, '--force'], dirB);
        assert.match(deploy.stdout, /Redis user kw-validb \(keys validb:\*\) updated/, printed(deploy));
        const after = await attack(dirB);
        for (const name of REDIS_ATTACKS) assert.match(after[name] ?? '', /^refused: /, `${name} after the deploy: ${after[name]}`);
        const r = await http(address, B.domain, '/redis');
        assert.doesNotMatch(r.body, /FAILED/, r.body);
      });
    });
  });
});
