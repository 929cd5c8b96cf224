import { readFile } from 'node:fs/promises';

let known: Promise<string> | undefined;

/** Kraftwerk's own version (package.json), read once: `--version`, and the fingerprint of a release. */
export function kraftwerkVersion(): Promise<string> {
  known ??= (async () => {
    // core/version.ts from source is one folder below the package, dist/core/version.js two.
    for (const rel of ['../package.json', '../../package.json']) {
      try {
        const pkg = JSON.parse(await readFile(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version: string };
        if (pkg.name === 'kraftwerk') return pkg.version;
      } catch {
        // try the next location
      }
    }
    return 'unknown';
  })();
  return known;
}
