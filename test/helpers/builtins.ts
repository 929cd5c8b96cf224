import type { BuiltinPlugins } from '../../core/index.ts';
import { stackPlugins } from '../../plugins/builtins.ts';
import { toolPlugins } from '../../tools/builtins.ts';

/** The built-in table as the CLI wiring (core/cli/main.ts) hands it to core. */
export const builtinTable: BuiltinPlugins = { ...stackPlugins, load: { ...stackPlugins.load, ...toolPlugins.load }, commands: toolPlugins.commands };
