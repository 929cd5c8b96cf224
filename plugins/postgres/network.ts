/**
 * PostgreSQL on a database node (a group whose nodes declare roles): the
 * server listens on the node's private address as well as its socket, speaks
 * TLS with the node's certificate, and lets each site's role in with a
 * scram-sha-256 password from its app nodes' addresses only (`hostssl`, one
 * /32 or /128 each). A group with no roles never reaches this file.
 *
 * Files on the db node (all root's; none is written by a site):
 * - CONF_NAME in the cluster's conf.d: root 0644 (settings, no secret);
 * - HBA_FILE, assembled from HBA_BASE and every site's HBA_DIR/<site>.conf:
 *   root:postgres 0640 (PostgreSQL reads it; sites need not);
 * - PASSWORD_DIR/<site>: root 0600 in a root 0700 folder: the role's password,
 *   made on the node and never written anywhere else on it.
 * On an app node: the db node's certificate, root 0644 (public; the site reads
 * it to verify the server), and the libpq service file of external.ts
 * (root 0600) for dump and load.
 */
import { ConfigValueError, CONTROL, ensureSecretFileCommand, hostCidr, KraftwerkError, NODE_CERT, NODE_KEY, raw, type Script, sh, shareSecretCommand } from '../../core/index.ts';

export const PORT = 5432;
export const KRAFTWERK_DIR = '/etc/kraftwerk/postgres';
export const HBA_FILE = `${KRAFTWERK_DIR}/pg_hba.conf`;
export const HBA_DIR = `${KRAFTWERK_DIR}/hba.d`;
export const PASSWORD_DIR = `${KRAFTWERK_DIR}/passwords`;
export const CONF_NAME = 'kraftwerk-network.conf';
/** Where an app node keeps the db node's certificate (sslrootcert of DATABASE_URL). */
export const CLIENT_CERT_DIR = '/etc/kraftwerk/db-ca';

export function clientCertPath(site: string): string {
  return `${CLIENT_CERT_DIR}/${site}-postgres.crt`;
}

export function hbaFragmentPath(site: string): string {
  return `${HBA_DIR}/${site}.conf`;
}

export function passwordPath(site: string): string {
  return `${PASSWORD_DIR}/${site}`;
}

/**
 * A string in postgresql.conf: single-quoted, `'` doubled and `\` doubled
 * (the file's parser reads backslash escapes). No control character: it would
 * end the line.
 */
export function confString(value: string): string {
  const bad = CONTROL.exec(value);
  if (bad) throw new ConfigValueError('PostgreSQL', value, `it holds a control character (U+${bad[0].charCodeAt(0).toString(16).padStart(4, '0')})`);
  return `'${value.replaceAll('\\', '\\\\').replaceAll("'", "''")}'`;
}

/** The server's settings on a db node; `address` is its private address (an IP literal, checked by privateAddress). */
export function renderNetworkConf(address: string): string {
  return `# Kraftwerk: this node serves the databases of other nodes of its group.
listen_addresses = ${confString(`localhost,${address}`)}
ssl = on
ssl_cert_file = ${confString(NODE_CERT)}
ssl_key_file = ${confString(NODE_KEY)}
ssl_min_protocol_version = 'TLSv1.2'
password_encryption = 'scram-sha-256'
hba_file = ${confString(HBA_FILE)}
`;
}

/**
 * What every node's PostgreSQL lets in before any site: Debian's own rules
 * (the superuser and local users by peer over the socket, passwords on
 * loopback), so the node's tools and a single-node site on it work as before.
 */
export const HBA_BASE = `# Kraftwerk: assembled from ${HBA_DIR}/*.conf after these lines; edit those, not this file.
local   all             postgres                                peer
local   all             all                                     peer
host    all             all             127.0.0.1/32            scram-sha-256
host    all             all             ::1/128                 scram-sha-256
`;

/**
 * A database or role name as one pg_hba token: double-quoted, so a keyword
 * (all, sameuser, replication) means only that name. pg_hba has no escape for
 * `"` in a quoted token, so it is refused, as are control characters, a
 * leading + or @ (group and file references) and a leading / (a regular
 * expression in PostgreSQL 16).
 */
export function hbaToken(value: string): string {
  const bad = /["\u0000-\u001f\u007f]/.exec(value);
  if (value === '') throw new ConfigValueError('pg_hba', value, 'it is empty');
  if (bad) throw new ConfigValueError('pg_hba', value, bad[0] === '"' ? 'it holds a double quote' : 'it holds a control character');
  if (/^[+@/]/.test(value)) throw new ConfigValueError('pg_hba', value, `it begins with ${value[0]}`);
  return `"${value}"`;
}

/** A site's rules: its role into its database, over TLS, with its password, from each client address only. */
export function renderHbaFragment(names: { database: string; role: string }, addresses: readonly string[]): string {
  const db = hbaToken(names.database);
  const role = hbaToken(names.role);
  if (!addresses.length) throw new KraftwerkError(`no app node for the database ${names.database}: the group needs a node with role web, worker or cron`);
  return addresses.map((a) => `hostssl ${db} ${role} ${hostCidr(a)} scram-sha-256\n`).join('');
}

/**
 * Node setup of a db node: the conf.d file (stdin: renderNetworkConf), the
 * assembled pg_hba, the folders; PostgreSQL restarted when a setting that
 * needs it changed (listen_addresses, hba_file), else reloaded. Prints its changes.
 */
export function networkSetupCommand(): Script {
  return sh`set -e
cluster=$(pg_lsclusters -h | awk 'NR == 1 { print $1 "/" $2 }')
[ -n "$cluster" ] || { echo 'no PostgreSQL cluster on this node' >&2; exit 1; }
conf=/etc/postgresql/$cluster/conf.d/${raw(CONF_NAME)}
install -d -m 0755 -o root -g root ${KRAFTWERK_DIR} ${HBA_DIR}
install -d -m 0700 -o root -g root ${PASSWORD_DIR}
${assembleHba()}
new=$(mktemp); trap 'rm -f "$new"' EXIT
cat > "$new"
if ! cmp -s "$new" "$conf"; then
  install -m 0644 -o root -g root "$new" "$conf"
  echo 'PostgreSQL listens on the private address with TLS'
  pg_ctlcluster "\${cluster%/*}" "\${cluster#*/}" restart
elif pg_lsclusters -h | awk '$4 != "online" { found = 1 } END { exit !found }'; then
  pg_ctlcluster "\${cluster%/*}" "\${cluster#*/}" start
fi`;
}

/** HBA_BASE and every site's fragment into HBA_FILE (replaced in one rename). */
export function assembleHba(): Script {
  return sh`{ printf '%s' ${HBA_BASE}; for f in ${raw(`${HBA_DIR}/*.conf`)}; do [ -f "$f" ] && cat "$f"; done; true; } > ${`${HBA_FILE}.new`}
chown root:postgres ${`${HBA_FILE}.new`}; chmod 0640 ${`${HBA_FILE}.new`}; mv -f ${`${HBA_FILE}.new`} ${HBA_FILE}`;
}

/**
 * A deploy on the db node, after the site's fragment was written: its password
 * (made here once: 24 random bytes as hex, root 0600), the role and database
 * (PROVISION_SQL on stdin, then the password as a psql variable: root's
 * shell reads the file and its builtin printf writes the line into psql's
 * stdin, so it is never in a command line; it is hex, one psql word), pg_hba assembled and reloaded.
 * Prints what it made, then the password and the node's certificate
 * (shareSecretCommand): run it with secretOutput.
 */
export function serverProvisionCommand(site: string, psql: Script): Script {
  const file = passwordPath(site);
  return sh`set -e
[ -d ${PASSWORD_DIR} ] && [ -f ${NODE_CERT} ] || { echo 'this database node is not set up for other nodes: run kraftwerk setup-node for its group first' >&2; exit 1; }
${ensureSecretFileCommand(file, 'created the role password')}
{ cat; printf '\\\\set password %s\\n' "$(cat ${file})"; printf '%s\\n' ${"SELECT format('ALTER ROLE %I LOGIN PASSWORD %L', :'role', :'password') \\gexec"}; } | ( ${psql} )
${hbaReloadCommand()}
${shareSecretCommand(file)}`;
}

/** DATABASE_URL of an app node: the db node's address, TLS verified against its certificate. */
export function networkDatabaseUrl(names: { database: string; role: string }, password: string, address: string, certPath: string): string {
  const host = address.includes(':') ? `[${address}]` : address;
  const query = new URLSearchParams({ sslmode: 'verify-full', sslrootcert: certPath });
  return `postgresql://${encodeURIComponent(names.role)}:${encodeURIComponent(password)}@${host}:${PORT}/${encodeURIComponent(names.database)}?${query.toString().replaceAll('%2F', '/')}`;
}

/** After a site's fragment is gone (destroy): pg_hba assembled without it, and reloaded. */
export function hbaReloadCommand(): Script {
  return sh`set -e
${assembleHba()}
runuser -u postgres -- psql -X -q -At -c 'SELECT pg_reload_conf()' -d postgres >/dev/null`;
}
