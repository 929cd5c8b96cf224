import type { NodeFacts, NodeProbe } from '../engine/context.ts';
import { mergeSiteVariables, readSiteEnvScript, splitSiteEnvOutput } from './site-environment.ts';
import { type Script, raw, sh } from '../shell/sh.ts';
import { SITES_DIR, type Site } from '../config/site.ts';

/** Where setup-node leaves its marker. */
export const NODE_MARKER = '/etc/kraftwerk/node.json';
/** Where sites register their domains (defined with the site layout). */
export { SITES_DIR };

/** Facts of a node nobody probed (yet): every question unanswered. */
export function emptyFacts(): NodeFacts {
  return {
    setUp: false,
    otherSites: {},
    env: {},
    envLocal: {},
    exists: new Set(),
    absent: new Set(),
    files: new Map(),
    globs: new Map(),
    installed: new Set(),
  };
}

/** The plugins' questions (NodeProbe) as shell: one line of answer per question, keyed by its kind and index. */
function questionsCommand(probe: NodeProbe): Script {
  const lines: Script[] = [];
  [...probe.paths].forEach((p, i) => lines.push(sh`if [ -e ${p} ] || [ -L ${p} ]; then echo e${i}=1; else echo e${i}=0; fi`));
  // base64 keeps any content on one line of the answer.
  [...probe.reads].forEach((p, i) => lines.push(sh`if [ -f ${p} ]; then echo "r${i}=+$(base64 -w0 < ${p})"; else echo r${i}=-; fi`));
  [...probe.patterns].forEach((p, i) =>
    // The pattern is the one unquoted word: the shell expands it.
    lines.push(sh`for f in ${raw(globWord(p))}; do if [ -e "$f" ] || [ -L "$f" ]; then echo "g${i}=$f"; fi; done`),
  );
  if (probe.packages.size) {
    lines.push(sh`dpkg-query -W -f='pkg=\${Package} \${Status}\\n' ${[...probe.packages]} 2>/dev/null`);
  }
  return raw(lines.map((l) => l.text).join('\n'));
}

/** A glob pattern as a shell word: quoted, except for the pattern characters * ? [ ]. */
export function globWord(pattern: string): string {
  if (/[\n\0]/.test(pattern)) throw new Error(`cannot probe ${JSON.stringify(pattern)}: a pattern cannot contain a newline`);
  return pattern
    .split(/([*?[\]])/)
    .map((part) => (/^[*?[\]]$/.test(part) ? part : part === '' ? '' : sh`${part}`.text))
    .join('');
}

/**
 * One read-only command that tells core everything it needs to know about a
 * node before a deploy, and answers every question plugins asked
 * (`ctx.probe`), so a no-change deploy costs a single round trip here.
 */
export function probeCommand(site: Site, probe?: NodeProbe): Script {
  const p = site.paths;
  // The live release's record (releaseRecordPath) holds its fingerprint: the no-change check needs no command of its own.
  const records = `${p.state}/releases`;
  const questions = probe && !probe.empty ? sh`${questionsCommand(probe)}\n` : sh``;
  return sh`test -f ${NODE_MARKER} && echo setup=1
echo "python=$(python3 --version 2>/dev/null | cut -d' ' -f2)"
kw_current=$(basename "$(readlink ${p.current} 2>/dev/null)" 2>/dev/null)
echo "current=$kw_current"
if [ -n "$kw_current" ] && [ -f ${records}/"$kw_current".json ]; then echo "record=$(base64 -w0 < ${records}/"$kw_current".json)"; fi
for f in ${SITES_DIR}/*/domains; do [ -f "$f" ] && echo "site=$(basename "$(dirname "$f")") $(tr '\\n' ' ' < "$f")"; done
${questions}${readSiteEnvScript(site)}`;
}

/** A release record as the probe sends it (base64 of its JSON); undefined when it is not one. */
function parseRecord(base64: string): Record<string, unknown> | undefined {
  try {
    const record: unknown = JSON.parse(Buffer.from(base64, 'base64').toString('utf8'));
    return record && typeof record === 'object' && !Array.isArray(record) ? (record as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

export function parseProbe(output: string, site: Site, probe?: NodeProbe): NodeFacts {
  const { head, env, local: envLocal } = splitSiteEnvOutput(output);
  const facts = emptyFacts();
  const paths = [...(probe?.paths ?? [])];
  const reads = [...(probe?.reads ?? [])];
  const patterns = [...(probe?.patterns ?? [])];
  // Only a probe that really ran answers: an empty output (--dry-run) leaves every question open.
  const ran = head.includes('current=');
  if (ran) for (const pattern of patterns) facts.globs.set(pattern, []);
  for (const line of head.split('\n')) {
    const eq = line.indexOf('=');
    if (eq < 0) continue;
    const key = line.slice(0, eq);
    const value = line.slice(eq + 1).trim();
    const question = /^([erg])(\d+)$/.exec(key);
    if (question) {
      const [, kind, index] = question;
      const i = Number(index);
      if (kind === 'e' && paths[i] !== undefined) (value === '1' ? facts.exists : facts.absent).add(paths[i]!);
      else if (kind === 'r' && reads[i] !== undefined) {
        if (value.startsWith('+')) {
          facts.exists.add(reads[i]!);
          facts.files.set(reads[i]!, Buffer.from(value.slice(1), 'base64').toString('utf8'));
        } else facts.absent.add(reads[i]!);
      } else if (kind === 'g' && patterns[i] !== undefined) facts.globs.get(patterns[i]!)?.push(line.slice(eq + 1));
      continue;
    }
    if (key === 'setup') facts.setUp = value === '1';
    else if (key === 'python' && value) facts.pythonVersion = value;
    else if (key === 'current' && value) facts.currentRelease = value;
    else if (key === 'record') facts.liveRecord = parseRecord(value);
    else if (key === 'pkg') {
      const [name, ...status] = value.split(' ');
      if (name && probe?.packages.has(name) && status.join(' ') === 'install ok installed') facts.installed.add(name);
    } else if (key === 'site') {
      const [name, ...domains] = value.split(/\s+/);
      if (name && name !== site.name) facts.otherSites[name] = domains.filter(Boolean);
    }
  }
  facts.envLocal = envLocal;
  // What the site runs with now: the live release's own variables with env.local over them.
  facts.env = mergeSiteVariables(env, envLocal).vars;
  return facts;
}
