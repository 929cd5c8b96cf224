/**
 * Which file holds the project's dependencies, and what they are: `requirements:`
 * in kraftwerk.yaml, else requirements.txt, else pyproject.toml's
 * `[project].dependencies` (PEP 621). Read on the deploying machine before a
 * node is touched; a file that is missing, outside the project or unreadable
 * is a configuration error naming the file and the key.
 */
import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { relativePath, UsageError } from '../../core/index.ts';
import { pyprojectDependencies, PyprojectError, requirementName } from './pyproject.ts';

/** The keys of kraftwerk.yaml the python plugin owns. */
export const PYTHON_SETTINGS = {
  requirements: relativePath('a file of the project', 'requirements.txt or requirements/production.txt')
    .optional()
    .describe('File with the dependencies pip installs, relative to src: a requirements file or a pyproject.toml ([project].dependencies); default requirements.txt, else pyproject.toml'),
};

/** The dependencies of a project, as the venv is built from them. */
export type Dependencies =
  /** A requirements file: pip reads it in the release (`-r`), and its text keys the venv. */
  | { kind: 'requirements'; file: string; text: string }
  /** pyproject.toml: its list is given to pip, and only the list keys the venv (not the rest of the file). */
  | { kind: 'pyproject'; file: string; specs: string[] };

const DEFAULT_FILES = ['requirements.txt', 'pyproject.toml'];

/** A file of the project read as a pyproject file (by its name). */
const isPyproject = (file: string) => path.posix.basename(file).endsWith('.toml');

/**
 * The project's dependencies (see the file's comment). `configured` is the
 * `requirements:` value; `configFile` names the file in errors (exit 2).
 */
export function readDependencies(sourceDir: string, configured: string | undefined, configFile: string): Dependencies {
  const where = path.basename(configFile);
  const file = (configured ?? DEFAULT_FILES.find((f) => existsSync(path.join(sourceDir, f))))?.replace(/^\.\//, '');
  if (!file) {
    throw new UsageError(`no requirements.txt or pyproject.toml in ${sourceDir}`, {
      hint: `Create one (a requirements.txt may be empty) or point \`requirements:\` in ${where} at your requirements file.`,
    });
  }
  const full = path.join(sourceDir, file);
  const named = configured ? `requirements: ${file} (${where})` : file;
  if (!existsSync(full) || !statSync(full).isFile()) {
    throw new UsageError(`${named}: no such file in ${sourceDir}`, {
      hint: configured ? `Create it, or correct \`requirements:\` in ${where} (a path relative to the project folder).` : undefined,
    });
  }
  // A link that leads out of the project would name a file the release does not have.
  const real = realpathSync(full);
  const root = realpathSync(sourceDir);
  if (path.relative(root, real).startsWith('..')) {
    throw new UsageError(`${named}: it is a link to ${real}, outside the project`, {
      hint: `Copy the file into the project, or point \`requirements:\` in ${where} at a file inside it.`,
    });
  }
  const text = readFileSync(full, 'utf8');
  if (!isPyproject(file)) return { kind: 'requirements', file, text };
  try {
    return { kind: 'pyproject', file, specs: pyprojectDependencies(text) };
  } catch (err) {
    if (!(err instanceof PyprojectError)) throw err;
    throw new UsageError(`${named}: ${err.message}`, {
      hint: `Fix the file, or point \`requirements:\` in ${where} at a requirements file (pip freeze > requirements.txt).`,
    });
  }
}

/** What keys the venv: the requirements file's text, or the pyproject list one per line. */
export function dependencyText(deps: Dependencies): string {
  return deps.kind === 'requirements' ? deps.text : deps.specs.map((s) => `${s}\n`).join('');
}

/** True when there is something to install (a requirements file of comments and blank lines names nothing). */
export function hasDependencies(deps: Dependencies): boolean {
  return deps.kind === 'pyproject' ? deps.specs.length > 0 : deps.text.split('\n').some((line) => line.replace(/(^|\s)#.*$/, '').trim() !== '');
}

/**
 * Normalised distribution names the project depends on, for `kraftwerk init`
 * (the service plugins look for psycopg2, redis …): requirements.txt, following
 * `-r other.txt` a few levels deep, and pyproject.toml's list. `read` gives a
 * file of the project ('' when it is missing).
 */
export function dependencyNames(read: (file: string) => string): Set<string> {
  const names = new Set<string>();
  const fromRequirements = (file: string, depth: number) => {
    for (const raw of read(file).split('\n')) {
      const line = raw.replace(/(^|\s)#.*$/, '').trim();
      const include = /^(-r|--requirement)\s*=?\s*(\S+)/.exec(line);
      if (include && depth < 3) {
        fromRequirements(path.posix.join(path.posix.dirname(file), include[2]!), depth + 1);
        continue;
      }
      const name = line.startsWith('-') ? undefined : requirementName(line);
      if (name) names.add(name);
    }
  };
  fromRequirements('requirements.txt', 0);
  const pyproject = read('pyproject.toml');
  if (pyproject) {
    try {
      for (const spec of pyprojectDependencies(pyproject)) {
        const name = requirementName(spec);
        if (name) names.add(name);
      }
    } catch {
      // init guesses: a pyproject it cannot read only leaves the services to be chosen by hand (deploy says what is wrong).
    }
  }
  return names;
}

