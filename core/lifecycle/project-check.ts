import { existsSync } from 'node:fs';
import path from 'node:path';
import { KraftwerkError } from '../errors.ts';
import type { Site } from '../config/site.ts';

/** Checks of the project on this machine before a deploy touches a node: the WSGI module exists (the plugin that installs packages checks their file). */
export function checkProject(site: Site): void {
  if (!wsgiModuleFile(site)) {
    throw new KraftwerkError(
      `wsgi: module ${site.wsgi.module} not found in ${site.sourceDir} (looked for ${site.wsgi.module.replace(/\./g, '/')}.py)`,
      { hint: 'Set `wsgi:` in kraftwerk.yaml to module[:callable], e.g. app:app or mysite.wsgi.' },
    );
  }
}

function wsgiModuleFile(site: Site): string | undefined {
  const rel = site.wsgi.module.replace(/\./g, '/');
  for (const candidate of [`${rel}.py`, `${rel}/__init__.py`]) {
    if (existsSync(path.join(site.sourceDir, candidate))) return candidate;
  }
  return undefined;
}
