/**
 * A service that other nodes of the group reach over their private network
 * (a database on its own node): the addresses it trusts, the node's TLS
 * certificate for its private address, and an nftables guard that lets only
 * those addresses reach its ports. Generic: the plugins of such services say
 * which port and which nodes; nothing here knows a service.
 *
 * Everything rendered here goes into a configuration file or a rule set, so
 * an address is accepted only as an IP literal that Node's own parser reads
 * back unchanged: no name, no mask, no space, nothing that could add a rule.
 */
import { isIP } from 'node:net';
import type { DeployContext } from '../engine/context.ts';
import type { Hooks } from '../engine/hooks.ts';
import { Stage } from '../engine/tasks.ts';
import { KraftwerkError } from '../errors.ts';
import type { Site } from '../config/site.ts';
import type { Remote, RemoteFile } from '../remote/remote.ts';
import { raw, type Script, secret, sh } from '../shell/sh.ts';

/** A node as these helpers need it (TopologyNode has more). */
export interface PrivateNode {
  readonly name: string;
  readonly privateHost: string;
}

/**
 * The node's private address as an IP literal (IPv6 without brackets, lower
 * case). A host name is refused: pg_hba lines and nftables rules need an
 * address, and a name that resolves differently later would open the port to
 * another machine.
 */
export function privateAddress(node: PrivateNode): string {
  const host = node.privateHost.replace(/^\[(.*)\]$/, '$1');
  const version = isIP(host);
  if (version === 0) {
    throw new KraftwerkError(`node ${node.name}: private_host ${JSON.stringify(node.privateHost)} is not an IP address`, {
      hint: `A database node trusts its clients by address: set private_host: of ${node.name} in kraftwerk.yaml to its private IP address (e.g. 10.0.0.11).`,
    });
  }
  return version === 6 ? host.toLowerCase() : host;
}

/** One host as a CIDR block: /32 for IPv4, /128 for IPv6. */
export function hostCidr(address: string): string {
  const version = isIP(address);
  if (version === 0) throw new KraftwerkError(`${JSON.stringify(address)} is not an IP address`);
  return `${address}/${version === 4 ? 32 : 128}`;
}

/**
 * The node's certificate for its private address, shared by the services on
 * it. The folder and the certificate are root's, readable by all (a
 * certificate is public); the key is root's, readable by the group
 * `keyGroup` only (0640: PostgreSQL accepts a root-owned key that its group
 * reads, and Debian puts postgres in ssl-cert; a service of another user is
 * added to that group by its plugin).
 */
export const NODE_TLS_DIR = '/etc/kraftwerk/tls';
export const NODE_CERT = `${NODE_TLS_DIR}/node.crt`;
export const NODE_KEY = `${NODE_TLS_DIR}/node.key`;

/**
 * Makes the self-signed certificate (10 years, EC P-256) unless the one there
 * already names `address` (and 127.0.0.1, for the node's own tools); prints
 * `made the node certificate for <address>` when it made one. openssl runs on
 * the node, so the key never leaves it.
 */
export function nodeCertificateCommand(address: string, keyGroup: string): Script {
  const san = `IP:${address},IP:127.0.0.1`;
  return sh`set -e
if [ -s ${NODE_KEY} ] && openssl x509 -in ${NODE_CERT} -noout -ext subjectAltName 2>/dev/null | grep -qiF ${`IP Address:${address}`}; then exit 0; fi
install -d -m 0755 -o root -g root ${NODE_TLS_DIR}
tmp=$(mktemp -d ${`${NODE_TLS_DIR}/.new.XXXXXX`})
trap 'rm -rf "$tmp"' EXIT
(umask 077; openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 -subj ${`/CN=${address}`} -addext ${`subjectAltName=${san}`} -keyout "$tmp/key" -out "$tmp/crt" 2>/dev/null)
chown root:${keyGroup} "$tmp/key"; chmod 0640 "$tmp/key"; chmod 0644 "$tmp/crt"
mv -f "$tmp/key" ${NODE_KEY}; mv -f "$tmp/crt" ${NODE_CERT}
echo ${`made the node certificate for ${address}`}`;
}

/** The certificate's text (public), for the clients' copies. */
export function readNodeCertificateCommand(): Script {
  return sh`cat ${NODE_CERT}`;
}

/**
 * The guard's files: per service and site a fragment of `accept` rules
 * (FIREWALL_DIR/accept/<service>-<site>.nft) and per service one `drop`
 * (FIREWALL_DIR/drop/<service>.nft); the rule set is the head, all accepts,
 * all drops and the tail (firewallApplyCommand). Root's, readable by all
 * (addresses and ports, no secret).
 */
export const FIREWALL_DIR = '/etc/kraftwerk/firewall.d';
/** The rule set as last applied (root's, 0644: addresses and ports), which the node loads again at boot. */
export const FIREWALL_RULESET = '/etc/kraftwerk/firewall.nft';
const FIREWALL_INCLUDE = `include "${FIREWALL_RULESET}"`;
const TABLE = 'kraftwerk_private';

export function firewallAcceptPath(service: string, site: string): string {
  return `${FIREWALL_DIR}/accept/${service}-${site}.nft`;
}

export function firewallDropPath(service: string): string {
  return `${FIREWALL_DIR}/drop/${service}.nft`;
}

function checkPort(port: number): number {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new KraftwerkError(`${port} is not a TCP port`);
  return port;
}

/** The accept rules of one site's clients for `port`: one line per address (each an IP literal, checked). */
export function firewallAccepts(port: number, addresses: readonly string[]): string {
  checkPort(port);
  return addresses
    .map((a) => {
      const version = isIP(a);
      if (version === 0) throw new KraftwerkError(`${JSON.stringify(a)} is not an IP address`);
      return `    ${version === 4 ? 'ip' : 'ip6'} saddr ${a} tcp dport ${port} accept\n`;
    })
    .join('');
}

/** Everything else to `port` is dropped (after every site's accepts). */
export function firewallDrop(port: number): string {
  return `    tcp dport ${checkPort(port)} drop\n`;
}

/**
 * The rule set: our own table, replaced whole on each apply (the `table` line
 * before `delete` makes the first apply work too), so no rule of an earlier
 * apply is left. Loopback is always let in; ports nobody guards are not touched.
 */
export const FIREWALL_HEAD = `table inet ${TABLE}
delete table inet ${TABLE}
table inet ${TABLE} {
  chain input {
    type filter hook input priority filter - 10; policy accept;
    iif "lo" accept
    ct state established,related accept
    jump guarded
  }
  chain guarded {
`;
export const FIREWALL_TAIL = '  }\n}\n';

/**
 * Applies the rule set from the files, atomically (`nft -f` takes all or
 * nothing). Where nft cannot run (no nftables kernel support, a container
 * without the right), it prints `kraftwerk: no firewall: <why>` and leaves
 * the node as it is: the caller warns, and the service's own rules (pg_hba,
 * ACLs, bind addresses) still stand. Prints `kraftwerk: firewall applied`
 * otherwise.
 */
export function firewallApplyCommand(): Script {
  const files = raw(`${FIREWALL_DIR}/accept/*.nft ${FIREWALL_DIR}/drop/*.nft`);
  return sh`command -v nft >/dev/null 2>&1 || { echo 'kraftwerk: no firewall: nft is not installed'; exit 0; }
out=$(nft list tables 2>&1) || { printf 'kraftwerk: no firewall: %s\\n' "$(printf '%s' "$out" | head -n 1)"; exit 0; }
rules=${FIREWALL_RULESET}.new; trap 'rm -f "$rules"' EXIT
{ printf '%s' ${FIREWALL_HEAD}; for f in ${files}; do [ -f "$f" ] && cat "$f"; done; printf '%s' ${FIREWALL_TAIL}; } > "$rules"
nft -f "$rules"
mv -f "$rules" ${FIREWALL_RULESET}
# At boot: Debian's nftables service loads /etc/nftables.conf; it includes the rule set as last applied.
if [ -f /etc/nftables.conf ] && ! grep -qxF ${FIREWALL_INCLUDE} /etc/nftables.conf; then printf '%s\n' ${FIREWALL_INCLUDE} >> /etc/nftables.conf; fi
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then systemctl enable nftables >/dev/null 2>&1 || true; fi
echo 'kraftwerk: firewall applied'`;
}

/**
 * A password made on the node for a service's client (24 random bytes as
 * hex), in `file`: root 0600, made once, never sent anywhere but in this
 * command's output. Prints `made` when it made one.
 */
export function ensureSecretFileCommand(file: string, made: string): Script {
  return sh`[ -s ${file} ] || { (umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \\n' > ${file}) && echo ${made}; }`;
}

/** Prints `---secret---`, the password of `file`, `---cert---` and the node certificate: run with secretOutput, read with parseSharedSecret. */
export function shareSecretCommand(file: string): Script {
  return sh`echo ---secret---
cat ${file}; echo
echo ---cert---
cat ${NODE_CERT}`;
}

/** shareSecretCommand's output (and what the command printed before it, as lines). */
export function parseSharedSecret(stdout: string): { head: string[]; secret: string; cert: string } {
  const [head = '', rest = ''] = stdout.split('---secret---\n');
  const [secret = '', cert = ''] = rest.split('---cert---\n');
  return { head: head.split('\n').filter(Boolean), secret: secret.trim(), cert };
}

/** What these helpers read of a command's topology (core's Topology has this shape). */
export interface GroupTopology {
  readonly declared: boolean;
  readonly nodes: readonly (PrivateNode & { readonly roles: ReadonlySet<string> })[];
  readonly shared: Map<string, unknown>;
}

/**
 * The one node of the group with `role` that serves the others (`what` names
 * the service in the error). One, not several: Kraftwerk sets up no replication,
 * so a second node would hold a second, different database.
 */
export function serviceNode(topology: GroupTopology, role: string, what: string): PrivateNode {
  const found = topology.nodes.filter((n) => n.roles.has(role));
  if (found.length !== 1) {
    throw new KraftwerkError(
      found.length ? `${what}: nodes ${found.map((n) => n.name).join(', ')} all have role ${role}; a group has one` : `${what}: no node of the group has role ${role}`,
      { hint: `Give role ${role} (or db) to exactly one node of the group in kraftwerk.yaml (roles: [${role}]).` },
    );
  }
  return found[0]!;
}

/** The private addresses (checked) of the group's nodes that have any of `roles`: the clients a service lets in. */
export function clientAddresses(topology: GroupTopology, roles: readonly string[]): string[] {
  return [...new Set(topology.nodes.filter((n) => roles.some((r) => n.roles.has(r))).map(privateAddress))];
}

/** The private address (checked) of the command's own node `node`. */
export function ownPrivateAddress(topology: GroupTopology, node: string): string {
  const me = topology.nodes.find((n) => n.name === node);
  if (!me) throw new KraftwerkError(`node ${node} is not in the topology of this command`);
  return privateAddress(me);
}

/**
 * `url` (a variable of the site's environment now on the node) when it is the
 * one a plugin wrote for its `user` at `address`: a command that is not a
 * deploy (env, run) recomputes the environment without the service node's
 * answer, and keeps what the node has.
 */
export function previousServiceUrl(url: string | undefined, user: string, address: string): string | undefined {
  if (!url) return undefined;
  try {
    const u = new URL(url);
    return decodeURIComponent(u.username) === user && u.hostname.replace(/^\[(.*)\]$/, '$1') === address && u.password ? url : undefined;
  } catch {
    return undefined;
  }
}

/** What a service node hands to its clients' nodes in one command (topology.shared, memory only). */
interface Published {
  password: string;
  cert: string;
}

const publishedKey = (service: string, site: Site) => `${service}:${site.name}`;

/** A service on a node of its own, as its plugin describes it to the helpers below. */
export interface NodeService {
  /** The plugin, also the name of its files (firewall fragments) and of its key in topology.shared. */
  readonly service: string;
  /** The role of the node that serves it. */
  readonly role: string;
  readonly port: number;
  /** The roles whose nodes are its clients (they get the URL and the certificate). */
  readonly clientRoles: readonly string[];
}

type Ctx = { readonly topology: GroupTopology & { readonly roles: ReadonlySet<string> } };

/** Whether this node is a client of `svc` in a group that declares roles. */
export function isServiceClient(ctx: Ctx, svc: NodeService): boolean {
  return ctx.topology.declared && svc.clientRoles.some((r) => ctx.topology.roles.has(r));
}

/**
 * On the service's node, in a deploy: writes the site's firewall accepts
 * (and `files`, e.g. pg_hba lines), runs `command` (it must end in
 * shareSecretCommand; stdin `stdin`), publishes the password (a Secret from
 * here on: masked in all output) and the certificate for the clients' nodes,
 * and applies the firewall, warning where the node has none. Returns what the
 * command printed before the secret, the password and the client addresses.
 */
export async function serveClients(
  ctx: DeployContext & Ctx,
  svc: NodeService,
  files: (clients: string[]) => RemoteFile[],
  command: Script,
  stdin?: string,
): Promise<{ head: string[]; password: string; clients: string[] }> {
  const clients = clientAddresses(ctx.topology, svc.clientRoles);
  await ctx.remote.syncFiles([...files(clients), { path: firewallAcceptPath(svc.service, ctx.site.name), content: firewallAccepts(svc.port, clients), mode: 0o644, owner: 'root', group: 'root' }]);
  const { stdout } = await ctx.remote.exec(command, { stdin, secretOutput: true });
  // --dry-run: the commands are shown, nothing answers; the clients keep what they have.
  if (ctx.remote.dryRun) return { head: [], password: '', clients };
  const { head, secret: password, cert } = parseSharedSecret(stdout);
  if (!password || !cert.includes('BEGIN CERTIFICATE')) throw new KraftwerkError(`${svc.service} on ${ctx.node} gave no password or no certificate for ${ctx.site.name}`);
  secret(password);
  ctx.topology.shared.set(publishedKey(svc.service, ctx.site), { password, cert } satisfies Published);
  await applyFirewall(ctx, svc);
  return { head, password, clients };
}

/** Node setup of the service's node: its certificate, its firewall drop; returns what changed. */
export async function setUpServiceNode(ctx: { remote: Remote; node: string; log: { warn(m: string): void } } & Ctx, svc: NodeService, keyGroup: string): Promise<{ address: string; changes: string[] }> {
  const address = ownPrivateAddress(ctx.topology, ctx.node);
  const { stdout } = await ctx.remote.exec(nodeCertificateCommand(address, keyGroup));
  await ctx.remote.syncFiles([{ path: firewallDropPath(svc.service), content: firewallDrop(svc.port), mode: 0o644, owner: 'root', group: 'root' }]);
  // From now on the port answers only the app nodes of sites deployed here (none yet on a new node).
  await applyFirewall(ctx, svc);
  return { address, changes: stdout.split('\n').filter(Boolean) };
}

/**
 * On the service's node, when the site is destroyed: its files (`files`,
 * e.g. its password and pg_hba lines, and its firewall accepts) removed, then
 * `after` (e.g. pg_hba assembled again) and the firewall applied without them.
 */
export async function forgetClients(ctx: { remote: Remote; node: string; site: Site; log: { warn(m: string): void } }, svc: NodeService, files: readonly string[], after: Script = sh`true`): Promise<void> {
  await ctx.remote.exec(sh`rm -f ${[...files, firewallAcceptPath(svc.service, ctx.site.name)]}
${after}`);
  await applyFirewall(ctx, svc);
}

async function applyFirewall(ctx: { remote: Remote; node: string; log: { warn(m: string): void } }, svc: NodeService): Promise<void> {
  const { stdout } = await ctx.remote.exec(firewallApplyCommand());
  if (stdout.includes('kraftwerk: no firewall')) {
    ctx.log.warn(`${ctx.node}: ${stdout.trim().replace(/^kraftwerk: /, '')}; port ${svc.port} of ${svc.service} is guarded by its own rules only (bind address, TLS, password)`);
  }
}

/**
 * The clients' side, tapped by the service's plugin: the environment of a
 * client node gets `variable` = `url(password, address of the service node)`
 * (a secret) from what the service node published in this command, else the
 * one the node has now; and a deploy writes the service node's certificate to
 * `certPath` (root 0644: public, and the site reads it to verify the server).
 */
export function tapServiceClients(
  hooks: Hooks,
  site: Site,
  svc: NodeService,
  client: { variable: string; user: string; certPath: string; url: (password: string, address: string) => string; more?: Record<string, string> },
): void {
  hooks.environment.tap(svc.service, (ctx, env) => {
    if (!isServiceClient(ctx, svc)) return;
    const server = serviceNode(ctx.topology, svc.role, `${svc.service} of ${site.name}`);
    const address = privateAddress(server);
    const published = ctx.topology.shared.get(publishedKey(svc.service, site)) as Published | undefined;
    const url = published ? client.url(published.password, address) : previousServiceUrl(ctx.previous[client.variable], client.user, address);
    // Not known yet: a first deploy's fingerprint is computed before the service's node made the
    // password. The deploy's own environment comes after; the configure task below stops it if still missing.
    if (!url) return;
    env.set(client.variable, url, { secret: true });
    for (const [k, v] of Object.entries(client.more ?? {})) env.set(k, v);
  });

  // The plugin's own taps run only on its service's node (runsOn); these are for its clients' nodes.
  const onClients = `${svc.service}-client`;
  hooks.destroy.tap(onClients, (ctx, tasks) => {
    if (!isServiceClient(ctx, svc)) return;
    tasks.add({
      title: `remove the ${svc.service} node certificate`,
      stage: Stage.LATE,
      run: async (c, task) => {
        await c.remote.exec(sh`rm -f ${client.certPath}`);
        task.title(`removed the certificate of the ${svc.service} node`);
      },
    });
  });

  hooks.configure.tap(onClients, (ctx, tasks) => {
    if (!isServiceClient(ctx, svc)) return;
    tasks.add({
      title: `${svc.service} node certificate`,
      // Before release commands (migrations) connect.
      stage: Stage.PREPARE,
      run: (c, task) => {
        const published = ctx.topology.shared.get(publishedKey(svc.service, site)) as Published | undefined;
        if (published) {
          c.files.add({ path: client.certPath, content: published.cert, mode: 0o644, owner: 'root', group: 'root' });
          return task.title(`${svc.service}: certificate of the node to verify (${client.certPath})`);
        }
        // The service's node had nothing to do in this deploy (no change there), or --dry-run: what this node has stays.
        if (!c.env[client.variable] && !c.remote.dryRun) {
          throw new KraftwerkError(`${svc.service}: the password of ${site.name}'s user is not known on ${c.node}: no node with role ${svc.role} answered in this deploy`, {
            hint: 'Deploy the whole group, the node with the service in it: kraftwerk deploy <group>',
          });
        }
        task.title(`${svc.service}: certificate of the node to verify (unchanged)`);
      },
    });
  });
}

/** What a plugin says of its service on a node of its own; tapNodeService does the rest. */
export interface NodeServiceSpec {
  /** The service as users know it, in titles: PostgreSQL, Redis. */
  readonly label: string;
  /** setup-node of the service's node. */
  readonly setup: {
    readonly packages: readonly string[];
    /** The group through which the service's daemon reads the node key. */
    readonly keyGroup: string;
    readonly stage: number;
    /** The service's own setup for `address` (its stdout lines are its changes). */
    command(address: string): { command: Script; stdin: string };
  };
  /** A deploy on the service's node (serveClients' arguments); `then` runs after, with the password, and returns the task's title. */
  readonly serve: {
    readonly files?: (clients: string[]) => RemoteFile[];
    readonly command: Script;
    readonly stdin?: string;
    then(ctx: DeployContext, result: { head: string[]; password: string; clients: string[] }): Promise<string>;
  };
  /** What destroy removes on the service's node (forgetClients). */
  readonly forget: { readonly files: readonly string[]; readonly after?: Script };
  /** The clients' side (tapServiceClients). */
  readonly client: Parameters<typeof tapServiceClients>[3];
}

/**
 * Every hook of a service on a node of its own, in a group that declares
 * roles: setup-node (certificate, firewall drop, the service's settings),
 * deploy on its node (in sync, so the password is published before any
 * node, this one too, computes its environment), destroy, and the clients.
 */
export function tapNodeService(hooks: Hooks, site: Site, svc: NodeService, spec: NodeServiceSpec): void {
  const onServiceNode = (ctx: Ctx) => ctx.topology.declared && ctx.topology.roles.has(svc.role);
  hooks.setupNode.tap(svc.service, (ctx, tasks, packages) => {
    if (!onServiceNode(ctx)) return;
    packages.add('nftables', 'openssl', ...spec.setup.packages);
    tasks.add({
      title: `${spec.label} for the other nodes`,
      stage: spec.setup.stage,
      run: async (c, task) => {
        const { address, changes } = await setUpServiceNode(c, svc, spec.setup.keyGroup);
        const { command, stdin } = spec.setup.command(address);
        changes.push(...(await c.remote.exec(command, { stdin })).stdout.split('\n').filter(Boolean));
        c.changes.push(...changes);
        task.title(changes.length ? `${spec.label} on ${address}: ${changes.join('; ')}` : `${spec.label} on ${address} with TLS (unchanged)`);
      },
    });
  });

  hooks.sync.tap(svc.service, (ctx, tasks) => {
    if (!onServiceNode(ctx)) return;
    tasks.add({
      title: `${spec.label} for the app nodes`,
      run: async (c, task) => {
        const result = await serveClients(c, svc, spec.serve.files ?? (() => []), spec.serve.command, spec.serve.stdin);
        task.title(await spec.serve.then(c, result));
      },
    });
  });

  hooks.destroy.tap(svc.service, (ctx, tasks) => {
    if (!onServiceNode(ctx)) return;
    tasks.add({
      title: 'forget the app nodes',
      // After the plugin removed the site's user and data (its own destroy task, Stage.LATE).
      stage: Stage.LATE + 10,
      run: async (c, task) => {
        await forgetClients(c, svc, spec.forget.files, spec.forget.after);
        task.title(`${spec.label}: removed ${site.name}'s password and the firewall rules of its app nodes`);
      },
    });
  });

  tapServiceClients(hooks, site, svc, spec.client);
}
