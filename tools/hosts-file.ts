import { readFile, writeFile } from 'node:fs/promises';
import { KraftwerkError } from '../core/index.ts';

/**
 * /etc/hosts lines for nodes (create-node offers one, as the original did) and
 * for sandboxes (`kraftwerk sandbox hosts`). A line may carry an owner marker
 * comment so that its owner can remove exactly its own lines again.
 */

/** The /etc/hosts line for a name (or several names of one address). */
export function hostsLine(address: string, name: string, owner?: string): string {
  return `${address}\t${name}${owner ? ` # ${owner}` : ''}`;
}

/** /etc/hosts without the lines marked as `owner`'s. Undefined when there are none. */
export function withoutHostsEntries(text: string, owner: string): string | undefined {
  const lines = text.split('\n');
  const kept = lines.filter((l) => !l.endsWith(` # ${owner}`));
  return kept.length === lines.length ? undefined : kept.join('\n');
}

/** Remove the lines marked as `owner`'s from `file`. Returns whether any were there. */
export async function removeHostsEntries(file: string, owner: string): Promise<boolean> {
  const text = await readFile(file, 'utf8').catch(() => undefined);
  const next = text === undefined ? undefined : withoutHostsEntries(text, owner);
  if (next === undefined) return false;
  await writeFile(file, next);
  return true;
}

/**
 * /etc/hosts with `name` pointing at `address`: a line that maps only `name`
 * to another address is replaced (a node re-created under the same name),
 * otherwise the line is appended. Returns undefined when nothing changes.
 */
export function withHostsEntry(text: string, address: string, name: string, owner?: string): string | undefined {
  const lines = text.split('\n');
  const fieldsOf = (line: string) => line.replace(/#.*/, '').trim().split(/\s+/);
  if (lines.some((l) => fieldsOf(l)[0] === address && fieldsOf(l).slice(1).includes(name))) return undefined;
  let replaced = false;
  const out = lines.map((line) => {
    const f = fieldsOf(line);
    if (f.length !== 2 || f[1] !== name) return line;
    replaced = true;
    return hostsLine(address, name, owner);
  });
  if (replaced) return out.join('\n');
  const base = text.length === 0 || text.endsWith('\n') ? text : `${text}\n`;
  return `${base}${hostsLine(address, name, owner)}\n`;
}

/** Writes the entry into `file` (normally /etc/hosts). Returns false when it was already there. */
export async function addHostsEntry(file: string, address: string, name: string, owner?: string): Promise<boolean> {
  try {
    const text = await readFile(file, 'utf8').catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return '';
      throw e;
    });
    const next = withHostsEntry(text, address, name, owner);
    if (next === undefined) return false;
    await writeFile(file, next);
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
      throw new KraftwerkError(`cannot write ${file} (${code})`, {
        hint: `Add the line yourself: echo '${hostsLine(address, name).replace('\t', ' ')}' | sudo tee -a ${file}`,
      });
    }
    throw e;
  }
}
