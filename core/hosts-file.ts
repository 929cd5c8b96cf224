import { readFile, writeFile } from 'node:fs/promises';
import { KraftwerkError } from '../../core/errors.ts';

/** The /etc/hosts line for a node, as the original create-node offered it. */
export function hostsLine(address: string, name: string): string {
  return `${address}\t${name}`;
}

/**
 * /etc/hosts with `name` pointing at `address`: a line that maps only `name`
 * to another address is replaced (a node re-created under the same name),
 * otherwise the line is appended. Returns undefined when nothing changes.
 */
export function withHostsEntry(text: string, address: string, name: string): string | undefined {
  const lines = text.split('\n');
  const fieldsOf = (line: string) => line.replace(/#.*/, '').trim().split(/\s+/);
  if (lines.some((l) => fieldsOf(l)[0] === address && fieldsOf(l).slice(1).includes(name))) return undefined;
  let replaced = false;
  const out = lines.map((line) => {
    const f = fieldsOf(line);
    if (f.length !== 2 || f[1] !== name) return line;
    replaced = true;
    return hostsLine(address, name);
  });
  if (replaced) return out.join('\n');
  const base = text.length === 0 || text.endsWith('\n') ? text : `${text}\n`;
  return `${base}${hostsLine(address, name)}\n`;
}

/** Writes the entry into `file` (normally /etc/hosts). Returns false when it was already there. */
export async function addHostsEntry(file: string, address: string, name: string): Promise<boolean> {
  try {
    const text = await readFile(file, 'utf8').catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return '';
      throw e;
    });
    const next = withHostsEntry(text, address, name);
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
