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
import { KraftwerkError } from '../errors.ts';
import { raw, type Script, sh } from '../shell/sh.ts';

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
rules=$(mktemp); trap 'rm -f "$rules"' EXIT
{ printf '%s' ${FIREWALL_HEAD}; for f in ${files}; do [ -f "$f" ] && cat "$f"; done; printf '%s' ${FIREWALL_TAIL}; } > "$rules"
nft -f "$rules"
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
