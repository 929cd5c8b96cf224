import { applyPlugins } from './deploy.ts';
import type { CoreKit } from '../kit.ts';
import type { BuiltinPlugins } from '../../engine/registry.ts';

/** core, the fixed stack, a service the site enables, a built-in on by its own config key, or the project's own. */
function kindOf(name: string, services: readonly string[], builtins: BuiltinPlugins): string {
  if (name === 'core') return 'core';
  if (builtins.stack.includes(name)) return 'stack';
  if (services.includes(name)) return 'service';
  if (builtins.site.includes(name)) return 'builtin';
  return 'project';
}

/** `kraftwerk plugins`: the plugins active for this project and the hooks each taps. */
export async function pluginsCommand(kit: CoreKit, options: { json?: boolean }): Promise<void> {
  const project = await kit.loadProject();
  const { taps } = applyPlugins(project);
  const rows = [{ name: 'core', description: 'releases, environment, switch and health check' }, ...project.plugins].map((p) => ({
    name: p.name,
    description: p.description ?? '',
    hooks: [...(taps.get(p.name) ?? [])],
    kind: kindOf(p.name, project.site.services, kit.builtins),
  }));
  if (options.json) {
    process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
    return;
  }
  const width = Math.max(...rows.map((r) => r.name.length));
  process.stdout.write(`Plugins for site ${project.site.name} (${project.site.configFile}):\n`);
  for (const r of rows) {
    process.stdout.write(`  ${r.name.padEnd(width)}  ${r.kind.padEnd(8)}  ${r.hooks.join(', ') || '(no hooks)'}\n`);
    if (r.description) process.stdout.write(`  ${''.padEnd(width)}            ${r.description}\n`);
  }
}
