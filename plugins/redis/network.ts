/**
 * Redis on a database node (a group whose nodes declare roles): it binds the
 * node's private address and loopback and speaks TLS only (Debian 12's
 * redis-server 7.0 is built with TLS: it links libssl, and `tls-port` is
 * read), on port 6379, with the node's certificate. Each site's ACL user
 * needs its password, made on the db node.
 *
 * Files on the db node:
 * - NETWORK_CONF (included at the end of redis.conf): root:redis 0640;
 * - PASSWORD_DIR/<site>: root 0600 in a root 0700 folder.
 * On an app node: the db node's certificate, root 0644 (public; the site reads it).
 */
import { ConfigValueError, ensureSecretFileCommand, hostCidr, NODE_CERT, NODE_KEY, sh, shareSecretCommand, type Script } from '../../core/index.ts';

export const PORT = 6379;
export const NETWORK_CONF = '/etc/redis/kraftwerk-network.conf';
export const PASSWORD_DIR = '/etc/kraftwerk/redis/passwords';
export const CLIENT_CERT_DIR = '/etc/kraftwerk/db-ca';

export function clientCertPath(site: string): string {
  return `${CLIENT_CERT_DIR}/${site}-redis.crt`;
}

export function passwordPath(site: string): string {
  return `${PASSWORD_DIR}/${site}`;
}

/** The settings that override redis.conf on a db node; `address` is an IP literal (refused otherwise: it is a word of `bind`). */
export function renderRedisNetworkConf(address: string): string {
  try {
    hostCidr(address);
  } catch {
    throw new ConfigValueError('Redis', address, 'it is not one IP address');
  }
  return `# Kraftwerk: this node serves Redis to other nodes of its group, over TLS only.
bind 127.0.0.1 -::1 ${address}
port 0
tls-port ${PORT}
tls-cert-file ${NODE_CERT}
tls-key-file ${NODE_KEY}
tls-ca-cert-file ${NODE_CERT}
tls-auth-clients no
tls-protocols "TLSv1.2 TLSv1.3"
`;
}

/** REDIS_URL of an app node: TLS to the db node, verified against the copied certificate (redis-py reads both query keys). */
export function networkRedisUrl(user: string, password: string, address: string, certPath: string): string {
  const host = address.includes(':') ? `[${address}]` : address;
  return `rediss://${encodeURIComponent(user)}:${encodeURIComponent(password)}@${host}:${PORT}/0?ssl_cert_reqs=required&ssl_check_hostname=true&ssl_ca_certs=${certPath}`;
}

/** How redis-cli reaches the node's Redis as root: plain on loopback, or TLS (against the node certificate, which names 127.0.0.1) on a db node. */
export function cliConnection(tls: boolean): Script {
  return tls ? sh`--tls --cacert ${NODE_CERT} -h 127.0.0.1 -p ${PORT}` : sh`-h 127.0.0.1 -p ${PORT}`;
}

/**
 * Node setup of a db node (after redisSetupCommand): redis joins ssl-cert (to
 * read the node key), NETWORK_CONF (stdin) included from redis.conf, Redis
 * restarted when anything changed. Prints its changes.
 */
export function redisNetworkSetupCommand(redisConf: string): Script {
  return sh`set -e
changed=
install -d -m 0700 -o root -g root ${PASSWORD_DIR}
if ! id -nG redis | tr ' ' '\\n' | grep -qx ssl-cert; then usermod -a -G ssl-cert redis; changed=1; fi
new=$(mktemp); trap 'rm -f "$new"' EXIT
cat > "$new"
if ! cmp -s "$new" ${NETWORK_CONF}; then
  install -m 0640 -o root -g redis "$new" ${NETWORK_CONF}
  echo 'Redis listens on the private address with TLS'; changed=1
fi
if ! grep -qx ${`include ${NETWORK_CONF}`} ${redisConf}; then
  printf '\\n# Kraftwerk: a database node (last, so it overrides bind and port)\\ninclude %s\\n' ${NETWORK_CONF} >> ${redisConf}
  changed=1
fi
if [ -n "$changed" ]; then service redis-server restart >/dev/null; echo 'restarted Redis'; fi`;
}

/**
 * The site's password on the db node: made once (24 random bytes as hex,
 * root 0600), printed after `---secret---` (run with secretOutput), then the
 * node certificate after `---cert---`.
 */
export function redisPasswordCommand(site: string): Script {
  const file = passwordPath(site);
  return sh`set -e
[ -d ${PASSWORD_DIR} ] && [ -f ${NODE_CERT} ] || { echo 'this database node is not set up for other nodes: run kraftwerk setup-node for its group first' >&2; exit 1; }
${ensureSecretFileCommand(file, 'created the Redis password')}
${shareSecretCommand(file)}`;
}
