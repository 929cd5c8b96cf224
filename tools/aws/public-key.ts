import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { UsageError } from '../../core/index.ts';

/** Key types EC2's ImportKeyPair accepts. */
const IMPORTABLE = ['ssh-ed25519', 'ssh-rsa'];
/** Tried in order when --key is not given. */
const DEFAULT_KEYS = ['.ssh/id_ed25519.pub', '.ssh/id_rsa.pub'];

export interface PublicKey {
  /** "ssh-ed25519 AAAA… comment" */
  text: string;
  /** The .pub file it came from. */
  file: string;
  /** The private key next to it (the file name without .pub). */
  privateKeyFile: string;
}

export function expandHome(path: string, home = homedir()): string {
  return path === '~' ? home : path.startsWith('~/') ? join(home, path.slice(2)) : resolve(path);
}

/** `path` with the home folder written as ~ (what kraftwerk.yaml should hold). */
export function tildePath(path: string, home = homedir()): string {
  return path.startsWith(`${home}/`) ? `~/${path.slice(home.length + 1)}` : path;
}

/** Reads the user's public key: `--key FILE`, else ~/.ssh/id_ed25519.pub, else ~/.ssh/id_rsa.pub. */
export async function readPublicKey(given: string | undefined, home = homedir()): Promise<PublicKey> {
  const candidates = given ? [expandHome(given, home)] : DEFAULT_KEYS.map((k) => join(home, k));
  for (const file of candidates) {
    let text: string;
    try {
      text = (await readFile(file, 'utf8')).trim();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT' && !given) continue;
      throw new UsageError(`cannot read public key ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, {
        hint: 'Pass the .pub file of your SSH key with --key (ssh-keygen -t ed25519 creates one).',
      });
    }
    if (text.startsWith('-----BEGIN')) {
      throw new UsageError(`${file} is a private key; create-node needs the public one`, { hint: `Pass --key ${file}.pub` });
    }
    const [type, blob] = text.split(/\s+/);
    if (!type || !blob || !/^[A-Za-z0-9+/]+={0,2}$/.test(blob) || text.includes('\n')) {
      throw new UsageError(`${file} is not an OpenSSH public key (one line: type, base64 key, comment)`);
    }
    if (!IMPORTABLE.includes(type)) {
      throw new UsageError(`EC2 cannot import ${type} keys (${file})`, {
        hint: 'Use an ed25519 or RSA key: ssh-keygen -t ed25519, then --key ~/.ssh/id_ed25519.pub',
      });
    }
    return { text, file, privateKeyFile: file.replace(/\.pub$/, '') };
  }
  throw new UsageError('no SSH public key found (~/.ssh/id_ed25519.pub or ~/.ssh/id_rsa.pub)', {
    hint: 'Create one with ssh-keygen -t ed25519, or pass --key FILE.pub',
  });
}
