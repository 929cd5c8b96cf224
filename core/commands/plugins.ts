import { applyPlugins } from './deploy.ts';
import type { CoreKit } from '../kit.ts';

/** `kraftwerk plugins`: the plugins active for this project and the hooks each taps. */
export async function pluginsCommand(kit: CoreKit, options: { json?: boolean }): Promise<void> {
  const project = await kit.loadProject();
  const { taps } = applyPlugins(project);
  const rows = [{ name: 'core', description: 'releases, environment, switch and health check' }, ...project.plugins].map((p) => ({
    name: p.name,
    description: p.description ?? '',
    hooks: [...(taps.get(p.name) ?? [])],
    kind:
      p.name === 'core'
        ? 'core'
        : ['python', 'uwsgi', 'runit', 'nginx'].includes(p.name)
          ? 'stack'
          : project.site.services.includes(p.name)
            ? 'service'
            : 'project',
  }));
  if (options.json) {
    process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
    return;
  }
  const width = Math.max(...rows.map((r) => r.name.length));
  process.stdout.write(`Plugins for site ${project.site.name} (${project.site.configFile}):\n`);
  for (const r of rows) {
    process.stdout.write(`  ${r.name.padEnd(width)}  ${r.kind.padEnd(7)}  ${r.hooks.join(', ') || '(no hooks)'}\n`);
    if (r.description) process.stdout.write(`  ${''.padEnd(width)}           ${r.description}\n`);
  }
}
