/**
 * redis (service): a Redis ACL user per site, limited to the keys and channels
 * `<site>:*`. The node's `default` user is switched off at setup-node, so a site
 * can only reach Redis with its own password (REDIS_URL, kept in its environment).
 */
import { createHash, randomBytes } from 'node:crypto';
import { definePlugin, isProvisioned, KraftwerkError, provisionMarker, raw, settingsOf, sh, Stage, type Script, type Hooks, type Site, userVariableCheck } from '../../core/index.ts';
import { applyDbNode } from './db-node.ts';
import { cliConnection } from './network.ts';
import { REDIS_SETTINGS } from './settings.ts';

const PLUGIN_NAME = 'redis';

export const REDIS_CONF = '/etc/redis/redis.conf';
/** ACL users live in their own file so `ACL SAVE` can persist them (redis.conf is not writable by Redis). */
export const ACL_FILE = '/etc/redis/kraftwerk.acl';
/** Password of Kraftwerk's own admin user, readable by root only. */
export const ADMIN_SECRET = '/etc/kraftwerk/redis-admin.secret';
export const ADMIN_USER = 'kraftwerk';
export const REDIS_HOST = '127.0.0.1';
export const REDIS_PORT = 6379;

/** `redis: {url: env}`: Redis is managed elsewhere and REDIS_URL is the user's. */
export function isExternal(site: Site): boolean {
  return settingsOf(site, REDIS_SETTINGS).redis?.url === 'env';
}

export function redisUser(site: Site): string {
  return site.user;
}

export function keyPrefix(site: Site): string {
  return `${site.name}:`;
}

export function redisUrl(site: Site, password: string): string {
  return `redis://${encodeURIComponent(redisUser(site))}:${encodeURIComponent(password)}@${REDIS_HOST}:${REDIS_PORT}/0`;
}

/** The password in a REDIS_URL written by an earlier deploy, if it is this site's user. */
export function previousPassword(site: Site, url: string | undefined): string | undefined {
  if (!url) return undefined;
  try {
    const u = new URL(url);
    if (decodeURIComponent(u.username) !== redisUser(site) || !u.password) return undefined;
    return decodeURIComponent(u.password);
  } catch {
    return undefined;
  }
}

export function newPassword(): string {
  return randomBytes(24).toString('hex');
}

/** Makes later redis-cli calls authenticate as Kraftwerk's admin user; the password is read on the server, never sent. */
function adminAuth(): Script {
  return sh`export REDISCLI_AUTH="$(cat ${ADMIN_SECRET})"`;
}

/** redis-cli as the admin user (after adminAuth); over TLS on a database node (network.ts). */
function adminCli(tls: boolean): Script {
  return sh`redis-cli --no-auth-warning --user ${ADMIN_USER} ${cliConnection(tls)}`;
}

/**
 * What a site's Redis user may run, as ACL rules after `-@all` (an allow-list;
 * Redis 7, Debian 12's redis-server). The site's keys are `~<site>:*` and its
 * channels `&<site>:*`, so what is allowed must be a command that Redis checks
 * against those patterns, or one that only concerns the caller's own connection:
 *
 * - the data types' categories: every command in them names its keys;
 * - of @keyspace, the commands that name their keys (not SCAN, KEYS, RANDOMKEY,
 *   DBSIZE: they list or count every site's keys; not FLUSHALL, FLUSHDB, SWAPDB,
 *   MOVE, COPY, MIGRATE, RESTORE, DUMP, OBJECT: node-wide or not needed);
 * - pub/sub on its own channels, but no PUBSUB CHANNELS/NUMSUB (every site's channels);
 * - MULTI/EXEC/WATCH (redis-py pipelines);
 * - EVAL/EVALSHA and SCRIPT LOAD/EXISTS (redis-py's Lock and register_script):
 *   commands inside a script are checked against the caller's ACL. Not SCRIPT
 *   FLUSH/KILL, and no FUNCTION at all: libraries are node-wide, so one site
 *   could replace the code another site's FCALL runs with that site's rights;
 * - of the connection's commands those about itself (AUTH, HELLO, SELECT, CLIENT
 *   ID/INFO/SETNAME/GETNAME/REPLY, COMMAND metadata); not CLIENT LIST/KILL/PAUSE/
 *   UNBLOCK (other connections), CLIENT TRACKING/CACHING (BCAST invalidations name
 *   other sites' keys), WAIT, INFO, CONFIG, DEBUG, MONITOR.
 *
 * `-@admin -@dangerous` come last, a safety net for whatever a category gains in
 * a later Redis (it also takes SORT, whose BY/GET read keys by pattern).
 * A long Lua script can still keep Redis busy for every site (lua-time-limit):
 * one Redis for all sites is a shared resource, not a boundary for load.
 */
export const ACL_RULES = [
  '-@all',
  ...['string', 'hash', 'list', 'set', 'sortedset', 'stream', 'bitmap', 'hyperloglog', 'geo', 'transaction'].map((c) => `+@${c}`),
  ...['del', 'unlink', 'exists', 'type', 'touch', 'rename', 'renamenx'],
  ...['expire', 'pexpire', 'expireat', 'pexpireat', 'expiretime', 'pexpiretime', 'persist', 'ttl', 'pttl'],
  ...['subscribe', 'unsubscribe', 'psubscribe', 'punsubscribe', 'publish', 'ssubscribe', 'sunsubscribe', 'spublish'],
  ...['eval', 'evalsha', 'eval_ro', 'evalsha_ro', 'script|load', 'script|exists'],
  ...['auth', 'hello', 'ping', 'echo', 'select', 'quit', 'reset', 'time', 'command'],
  ...['client|id', 'client|info', 'client|setname', 'client|getname', 'client|reply'],
]
  .map((rule) => (rule.startsWith('-') || rule.startsWith('+') ? rule : `+${rule}`))
  .concat('-@admin', '-@dangerous')
  .join(' ');

/**
 * The ACL commands for the site's user, sent on stdin (a password hash on a
 * command line would show in `ps`). Only the SHA-256 of the password reaches Redis.
 * `reset` first: an existing user (a node deployed by an earlier version with a
 * wider ACL) gets exactly these rules, nothing it had before.
 */
export function aclCommands(site: Site, passwordSha256: string): string {
  const prefix = keyPrefix(site);
  return `ACL SETUSER ${redisUser(site)} reset on #${passwordSha256} ~${prefix}* &${prefix}* ${ACL_RULES}\nACL SAVE\n`;
}

/** Apply the site's ACL (stdin: aclCommands) and say whether it changed: `kraftwerk: unchanged` or `kraftwerk: changed`. */
export function aclApplyCommand(site: Site, tls = false): Script {
  const cli = adminCli(tls);
  const line = sh`${cli} ACL LIST </dev/null | grep -F ${`user ${redisUser(site)} `} || true`;
  return sh`set -e
${adminAuth()}
before=$(${line})
out=$(${cli})
case "$out" in *ERR*|*NOPERM*|*WRONGPASS*) printf '%s\\n' "$out" >&2; exit 1;; esac
after=$(${line})
if [ "$before" = "$after" ]; then echo 'kraftwerk: unchanged'; else echo 'kraftwerk: changed'; fi`;
}

/**
 * Node setup: an admin password, an ACL file with `default` switched off and
 * the admin user, redis.conf pointing at it, Redis running. Prints its changes.
 */
export function redisSetupCommand(): Script {
  return sh`set -e
changed=
if [ ! -s ${ADMIN_SECRET} ]; then
  install -d -m 0755 /etc/kraftwerk
  (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n' > ${ADMIN_SECRET})
  echo 'created the Redis admin password'
fi
if [ ! -f ${ACL_FILE} ]; then
  hash=$(printf '%s' "$(cat ${ADMIN_SECRET})" | sha256sum | cut -d' ' -f1)
  (umask 027; printf 'user default off\\nuser ${raw(ADMIN_USER)} on #%s ~* &* +@all\\n' "$hash" > ${ACL_FILE})
  chown redis:redis ${ACL_FILE}
  echo ${`wrote ${ACL_FILE}`}; changed=1
fi
if ! grep -qx ${`aclfile ${ACL_FILE}`} ${REDIS_CONF}; then
  printf '\\n# Kraftwerk: users of every site, saved with ACL SAVE\\naclfile %s\\n' ${ACL_FILE} >> ${REDIS_CONF}
  echo ${`enabled ACL users in ${REDIS_CONF}`}; changed=1
fi
if [ -n "$changed" ]; then
  service redis-server restart >/dev/null; echo 'restarted Redis'
elif ! service redis-server status >/dev/null 2>&1; then
  service redis-server start >/dev/null; echo 'started Redis'
fi`;
}

function passwordSha256(password: string): string {
  return createHash('sha256').update(password).digest('hex');
}

/** What the last deploy applied: the ACL commands of the site's user (its password only as a hash of a hash). */
export function aclMarker(site: Site, password = '') {
  return provisionMarker(site, PLUGIN_NAME, aclCommands(site, passwordSha256(password)));
}

/** Remove the site's Redis user, and unless `keepData`, its keys. */
export function removeUserCommand(site: Site, keepData: boolean, tls = false): Script {
  const cli = adminCli(tls);
  const keys = keepData
    ? sh``
    : sh`
${cli} --scan --pattern ${`${keyPrefix(site)}*`} | xargs -r -d '\\n' -n 100 ${cli} DEL >/dev/null`;
  return sh`set -e
${adminAuth()}
${cli} ACL DELUSER ${redisUser(site)} >/dev/null
${cli} ACL SAVE >/dev/null${keys}`;
}

export default definePlugin({
  name: PLUGIN_NAME,
  roles: [{ name: 'redis', description: 'runs Redis for the sites', partOf: 'db', first: true }],
  runsOn: ['redis'],
  init: {
    detect: ({ requirements }) => {
      const found = ['redis', 'hiredis', 'django-redis', 'flask-redis', 'rq'].find((p) => requirements.has(p));
      return found && `${found} in requirements.txt`;
    },
    examples: () => ({ redis: { url: 'env' } }),
  },
  description: 'Redis ACL user per site limited to <site>:* keys; on a db node of its own, TLS only (REDIS_URL, REDIS_KEY_PREFIX)',
  settings: REDIS_SETTINGS,
  nodeStatus: (status, site) => {
    if (!isExternal(site)) status.process('redis', 'redis-server');
  },
  // The site's name is its ACL user's name; redis is the daemon's system user.
  reservesSiteName: (name) => (name === 'redis' ? `"redis" is reserved: Redis's system user` : undefined),
  apply(hooks: Hooks, site: Site) {
    if (isExternal(site)) {
      // Nothing to provision or remove: the user's REDIS_URL must be there before anything changes.
      hooks.preSync.tap(PLUGIN_NAME, (_ctx, tasks) => {
        tasks.add(userVariableCheck(site, 'REDIS_URL', 'redis.url is "env"'));
      });
      return;
    }
    // A group that declares roles: Redis on its node, reached over the network with TLS (db-node.ts).
    applyDbNode(hooks, site, {
      user: redisUser(site),
      prefix: keyPrefix(site),
      apply: aclApplyCommand(site, true),
      commands: (password) => aclCommands(site, passwordSha256(password)),
      redisConf: REDIS_CONF,
    });
    hooks.setupNode.tap(PLUGIN_NAME, (_ctx, tasks, packages) => {
      packages.add('redis-server', 'redis-tools');
      tasks.add({
        title: 'Redis running with ACL users',
        run: async (ctx, task) => {
          const { stdout } = await ctx.remote.exec(redisSetupCommand());
          const changes = stdout.split('\n').filter(Boolean);
          ctx.changes.push(...changes);
          task.title(changes.length ? `Redis: ${changes.join('; ')}` : 'Redis running with ACL users (unchanged)');
        },
      });
    });

    hooks.environment.tap(PLUGIN_NAME, (ctx, env) => {
      if (ctx.topology.declared) return;
      // Generated once: later deploys keep the password the site already uses.
      const password = previousPassword(site, ctx.previous.REDIS_URL) ?? newPassword();
      env.set('REDIS_URL', redisUrl(site, password), { secret: true });
      env.set('REDIS_KEY_PREFIX', keyPrefix(site));
    });

    hooks.configure.tap(PLUGIN_NAME, (ctx, tasks) => {
      if (ctx.topology.declared) return;
      ctx.probe.read(aclMarker(site).path);
      tasks.add({
        title: 'Redis user',
        stage: Stage.PREPARE,
        // The same ACL (password included) as an earlier deploy applied: nothing to do, no command.
        skip: (c) => {
          const password = previousPassword(site, c.env.REDIS_URL);
          return password && isProvisioned(c.facts, aclMarker(site, password)) ? `Redis user ${redisUser(site)} (unchanged)` : false;
        },
        run: async (ctx, task) => {
          const password = previousPassword(site, ctx.env.REDIS_URL);
          if (!password) {
            throw new KraftwerkError(`REDIS_URL of ${site.name} does not name the Redis user ${redisUser(site)}`, {
              hint: 'REDIS_URL is managed by the redis service: remove it from `environ:` and `kraftwerk env`.',
            });
          }
          const { stdout } = await ctx.remote.exec(aclApplyCommand(site), { stdin: aclCommands(site, passwordSha256(password)) });
          ctx.files.add(aclMarker(site, password));
          task.title(stdout.includes('kraftwerk: changed') ? `Redis user ${redisUser(site)} (keys ${keyPrefix(site)}*) updated` : `Redis user ${redisUser(site)} (unchanged)`);
        },
      });
    });

    hooks.destroy.tap(PLUGIN_NAME, (ctx, tasks) => {
      const tls = ctx.topology.declared;
      tasks.add({
        title: 'remove Redis user',
        stage: Stage.LATE,
        run: async (ctx, task) => {
          await ctx.remote.exec(removeUserCommand(site, ctx.keepData, tls));
          task.title(`removed Redis user ${redisUser(site)}${ctx.keepData ? '' : ` and keys ${keyPrefix(site)}*`}`);
        },
      });
    });
  },
});
