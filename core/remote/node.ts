import type { Config } from '../config/schema.ts';
import { ConfigError, UsageError } from '../errors.ts';
import type { Plugin } from '../engine/plugin.ts';
import type { SshTarget } from './remote.ts';

/**
 * Node names: a key of `nodes:` in kraftwerk.yaml (a server or a group of
 * them), a name a plugin knows (a sandbox), or a host/alias OpenSSH knows.
 */

/** Expand a node name (or the default node) into the names of single servers. */
export function expandNodes(name: string | undefined, config: Config | undefined, configFile?: string): string[] {
  const nodes = config?.nodes ?? {};
  const chosen = name ?? config?.default_node ?? (Object.keys(nodes).length === 1 ? Object.keys(nodes)[0] : undefined);
  if (!chosen) {
    const known = Object.keys(nodes);
    throw new UsageError('no node given', {
      hint: known.length
        ? `Name one of: ${known.join(', ')} (or set default_node in kraftwerk.yaml).`
        : 'Name a server (kraftwerk deploy my.server.tld), a sandbox, or add `nodes:` to kraftwerk.yaml.',
    });
  }
  const out: string[] = [];
  const visit = (n: string, path: string[]) => {
    if (path.includes(n)) {
      throw new ConfigError(configFile ?? 'kraftwerk.yaml', `nodes.${path[0]}`, `group refers to itself: ${[...path, n].join(' → ')}`);
    }
    const spec = nodes[n];
    if (Array.isArray(spec)) {
      for (const member of spec) visit(member, [...path, n]);
    } else if (!out.includes(n)) out.push(n);
  };
  visit(chosen, []);
  return out;
}

/** Resolve one server's name into a connectable target. */
export async function resolveTarget(
  name: string,
  options: { config?: Config; plugins: readonly Plugin[] },
): Promise<SshTarget> {
  const spec = options.config?.nodes[name];
  const known = await pluginTarget(name, options.plugins);
  if (known) return known;
  // `host:` may name what a plugin knows too (a sandbox), so a group's config works on sandboxes as on servers.
  if (spec && typeof spec === 'object' && !Array.isArray(spec)) {
    const viaHost = await pluginTarget(spec.host, options.plugins);
    if (viaHost) return { ...viaHost, name, ...(spec.user ? { user: spec.user } : {}), ...(spec.port ? { port: spec.port } : {}) };
  }
  const { resolveSshTarget } = await import('./sshconfig.ts');
  if (typeof spec === 'string') return { ...(await resolveSshTarget(spec)), name };
  if (spec && !Array.isArray(spec)) {
    const target = await resolveSshTarget(spec.host, {
      user: spec.user,
      port: spec.port,
      identityFiles: spec.identity_file ? [spec.identity_file] : undefined,
    });
    return { ...target, name, sudo: spec.sudo ?? target.user !== 'root' };
  }
  const target = await resolveSshTarget(name);
  return { ...target, name, sudo: target.sudo ?? target.user !== 'root' };
}

/** The target a plugin knows by this name (a sandbox), with its own known_hosts. */
async function pluginTarget(name: string, plugins: readonly Plugin[]): Promise<SshTarget | undefined> {
  for (const plugin of plugins) {
    const found = await plugin.resolveNode?.(name);
    if (found?.host && found.knownHostsFiles) {
      return {
        name,
        host: found.host,
        port: found.port ?? 22,
        user: found.user ?? 'root',
        identityFiles: found.identityFiles ?? [],
        knownHostsFiles: found.knownHostsFiles,
        ...found,
      } as SshTarget;
    }
  }
  return undefined;
}
