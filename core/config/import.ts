import { fileURLToPath, pathToFileURL } from 'node:url';

/**
 * Loads TypeScript and JavaScript files of the user's project (kraftwerk.config.ts,
 * project-local plugins) with jiti. `import … from 'kraftwerk'` in those files
 * resolves to this very copy of Kraftwerk, so plugins share our classes and
 * constants even when the project has no node_modules of its own.
 */
const here = fileURLToPath(import.meta.url);
/** The public entry point next to this file: core/index.ts from source, dist/core/index.js when built. */
export const publicEntry = here.replace(/config[\\/]import\.(ts|js)$/, (_m, ext: string) => `index.${ext}`);

let jiti: { import(id: string, opts?: { default?: boolean }): Promise<unknown> } | undefined;

export async function importModule(file: string): Promise<unknown> {
  if (!jiti) {
    const { createJiti } = await import('jiti');
    // A virtual module, not an alias: an alias would make jiti compile a second
    // copy of core, whose classes (errors, collectors) are not ours.
    const self = (await import(pathToFileURL(publicEntry).href)) as Record<string, unknown>;
    jiti = createJiti(import.meta.url, {
      virtualModules: { kraftwerk: self },
      interopDefault: true,
      moduleCache: true,
      fsCache: false,
    });
  }
  return jiti.import(file);
}
