import type { NodeFacts } from './context.ts';
import { parseEnvFile } from './env.ts';
import { type Command, sh } from './shell.ts';
import type { Site } from './site.ts';

/** Where setup-node leaves its marker and where sites register their domains. */
export const NODE_MARKER = '/etc/kraftwerk/node.json';
export const SITES_DIR = '/etc/kraftwerk/sites';

/**
 * One read-only command that tells core everything it needs to know about a
 * node before a deploy, so a no-change deploy costs a single round trip here.
 */
export function probeCommand(site: Site): Command {
  const p = site.paths;
  return sh`test -f ${NODE_MARKER} && echo setup=1
echo "python=$(python3 -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null)"
echo "current=$(basename "$(readlink ${p.current} 2>/dev/null)" 2>/dev/null)"
for f in ${SITES_DIR}/*/domains; do [ -f "$f" ] && echo "site=$(basename "$(dirname "$f")") $(tr '\\n' ' ' < "$f")"; done
echo ---env---
cat ${p.env} 2>/dev/null
echo ---envlocal---
cat ${p.envLocal} 2>/dev/null
true`;
}

export function parseProbe(output: string, site: Site): NodeFacts {
  const [head = '', rest = ''] = output.split('---env---\n');
  const [env = '', envLocal = ''] = rest.split('---envlocal---\n');
  const facts: NodeFacts = { setUp: false, otherSites: {}, env: {}, envLocal: {} };
  for (const line of head.split('\n')) {
    const eq = line.indexOf('=');
    if (eq < 0) continue;
    const key = line.slice(0, eq);
    const value = line.slice(eq + 1).trim();
    if (key === 'setup') facts.setUp = value === '1';
    else if (key === 'python' && value) facts.pythonVersion = value;
    else if (key === 'current' && value) facts.currentRelease = value;
    else if (key === 'site') {
      const [name, ...domains] = value.split(/\s+/);
      if (name && name !== site.name) facts.otherSites[name] = domains.filter(Boolean);
    }
  }
  facts.envLocal = parseEnvFile(envLocal);
  facts.env = { ...parseEnvFile(env), ...facts.envLocal };
  return facts;
}
