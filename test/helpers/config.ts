import type { BuiltinPlugins } from '../../core/engine/registry.ts';
import { builtinConfigSchema, siteBuiltins } from '../../core/engine/project.ts';
import { builtinTable } from './builtins.ts';
export { builtinTable };

/**
 * kraftwerk.yaml's schema as the CLI builds it for a project without plugins
 * of its own: core's keys and every built-in plugin's. `parse` records the
 * plugin keys (as loadConfig does), so that createSite and settingsOf accept
 * the result.
 */
const built = await builtinConfigSchema(builtinTable);

export const configSchema = {
  parse: built.parse,
  safeParse: (value: unknown) => built.schema.safeParse(value),
  shape: built.schema.shape,
  owners: built.owners,
  schema: built,
};

/** The built-in plugins a site can have, for loadConfig's `plugins` (as loadProject passes them). */
export const builtins = [...(await siteBuiltins(builtinTable)).values()];
