/**
 * OpenSSH known_hosts, read and appended the way `ssh` does it, so that a host
 * accepted by Kraftwerk is known to `ssh`/rsync and the other way round.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * `revoked`: an `@revoked` line lists this very key; never connect.
 * `mismatch`: the host is known with other keys (of the same type or not: a server
 * asked for the type it is known with that answers with another may be an impostor).
 * `cert-authority`: no key of the host is recorded, but a `@cert-authority` line
 * says its keys are certified by a CA; ssh2 cannot check host certificates, so the
 * key is refused instead of being treated as new.
 * `unknown`: the host was never seen; only then may a key be accepted and recorded.
 */
export type HostKeyStatus = 'match' | 'mismatch' | 'unknown' | 'revoked' | 'cert-authority';

export interface HostKeyCheck {
  status: HostKeyStatus;
  /** SHA256 fingerprint of the key the server sent, as `ssh-keygen -l` prints it. */
  fingerprint: string;
  /** The file holding the line that decided a mismatch, revocation or certificate authority. */
  file?: string;
  /** mismatch: the keys recorded for the host (type and fingerprint); cert-authority: the CA keys. */
  known?: { type: string; fingerprint: string }[];
}

interface KnownHostsLine {
  marker?: string;
  hosts: string;
  keyType: string;
  key: Buffer;
}

/** `SHA256:<base64 without padding>` of a public key blob, like `ssh-keygen -lf`. */
export function fingerprint(keyBlob: Buffer): string {
  return `SHA256:${createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '')}`;
}

/** The key type written inside an SSH public key blob (first length-prefixed string). */
export function keyTypeOf(keyBlob: Buffer): string {
  if (keyBlob.length < 4) return '';
  const len = keyBlob.readUInt32BE(0);
  return keyBlob.subarray(4, 4 + len).toString('latin1');
}

/**
 * The name a host is listed under: the HostKeyAlias when set, `host` on port 22,
 * `[host]:port` otherwise (as ssh writes it).
 */
export function knownHostsName(host: string, port: number, hostKeyAlias?: string): string {
  // ssh lowercases names before looking them up (hashed entries hash the lowercased name).
  if (hostKeyAlias) return hostKeyAlias.toLowerCase();
  const name = host.toLowerCase();
  return port === 22 ? name : `[${name}]:${port}`;
}

export function parseKnownHosts(text: string): KnownHostsLine[] {
  const lines: KnownHostsLine[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const fields = line.split(/\s+/);
    const marker = fields[0]!.startsWith('@') ? fields.shift() : undefined;
    const [hosts, keyType, keyBase64] = fields;
    if (!hosts || !keyType || !keyBase64) continue;
    lines.push({ marker, hosts, keyType, key: Buffer.from(keyBase64, 'base64') });
  }
  return lines;
}

/** OpenSSH's wildcard match: `*` any run of characters, `?` one character. */
function wildcardMatch(name: string, pattern: string): boolean {
  const re = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${re}$`).test(name);
}

/**
 * Whether the host field of a line lists `name`: a hashed entry (`|1|salt|hmac`)
 * or a comma list of patterns where a matching `!pattern` excludes the host.
 */
export function hostFieldMatches(field: string, name: string): boolean {
  if (field.startsWith('|1|')) {
    const [, , salt, hash] = field.split('|');
    if (!salt || !hash) return false;
    const mac = createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64');
    return mac === hash;
  }
  const host = name.toLowerCase();
  let matched = false;
  for (const pattern of field.toLowerCase().split(',')) {
    if (pattern.startsWith('!')) {
      if (wildcardMatch(host, pattern.slice(1))) return false;
    } else if (wildcardMatch(host, pattern)) {
      matched = true;
    }
  }
  return matched;
}

/**
 * Decide about the key a server presented. Stricter than ssh's default where
 * ssh would ask: a revoked key (an `@revoked` line with this key, whatever its
 * host field) is refused; any unmarked line for the host with this key accepts
 * it; a host recorded with other keys only is a mismatch, whatever their type;
 * a host covered by a `@cert-authority` line is never "new".
 */
export function checkHostKey(files: readonly string[], hostnames: readonly string[], keyBlob: Buffer): HostKeyCheck {
  const result: HostKeyCheck = { status: 'unknown', fingerprint: fingerprint(keyBlob) };
  let matched = false;
  let mismatchFile: string | undefined;
  let caFile: string | undefined;
  const known: { type: string; fingerprint: string }[] = [];
  const authorities: { type: string; fingerprint: string }[] = [];
  for (const file of files) {
    if (!existsSync(file)) continue;
    for (const line of parseKnownHosts(readFileSync(file, 'utf8'))) {
      const sameKey = line.key.equals(keyBlob);
      if (line.marker === '@revoked') {
        if (sameKey) return { ...result, status: 'revoked', file };
        continue;
      }
      if (!hostnames.some((name) => hostFieldMatches(line.hosts, name))) continue;
      if (line.marker === '@cert-authority') {
        caFile ??= file;
        authorities.push({ type: keyTypeOf(line.key) || line.keyType, fingerprint: fingerprint(line.key) });
        continue;
      }
      if (line.marker !== undefined) continue;
      if (sameKey) matched = true;
      else {
        mismatchFile ??= file;
        known.push({ type: keyTypeOf(line.key) || line.keyType, fingerprint: fingerprint(line.key) });
      }
    }
  }
  if (matched) return { status: 'match', fingerprint: result.fingerprint };
  if (mismatchFile) return { ...result, status: 'mismatch', file: mismatchFile, known };
  if (caFile) return { ...result, status: 'cert-authority', file: caFile, known: authorities };
  return result;
}

/** Key types already recorded for a host, so the connection can ask the server for one of those first. */
export function knownKeyTypes(files: readonly string[], hostnames: readonly string[]): string[] {
  const types = new Set<string>();
  for (const file of files) {
    if (!existsSync(file)) continue;
    for (const line of parseKnownHosts(readFileSync(file, 'utf8'))) {
      if (line.marker === undefined && hostnames.some((name) => hostFieldMatches(line.hosts, name))) {
        types.add(keyTypeOf(line.key));
      }
    }
  }
  return [...types];
}

/**
 * Append a host key the user accepted. Creates the folder (0700) and the file
 * (0600) like ssh; `hash` writes the host name hashed (HashKnownHosts yes).
 */
export function recordHostKey(file: string, hostname: string, keyBlob: Buffer, options: { hash?: boolean } = {}): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  let host = hostname;
  if (options.hash) {
    const salt = randomBytes(20);
    host = `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update(hostname).digest('base64')}`;
  }
  const existing = existsSync(file) ? readFileSync(file, 'utf8') : '';
  const separator = existing === '' || existing.endsWith('\n') ? '' : '\n';
  appendFileSync(file, `${separator}${host} ${keyTypeOf(keyBlob)} ${keyBlob.toString('base64')}\n`, { mode: 0o600 });
}
