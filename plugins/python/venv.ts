import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { type Command, sh } from '../../core/index.ts';

/** Folder in a project that holds wheels to install from instead of a package index. */
export const WHEELHOUSE = 'wheels';

/** Marks a venv whose build finished; a venv without it is rebuilt, never reused. */
export const COMPLETE_MARKER = '.kraftwerk-complete';

export interface VenvInputs {
  /** Content of the requirements file. */
  requirements: string;
  /** Python version on the node, e.g. "3.11.2". */
  pythonVersion: string;
  /** Names and sizes of the files in the project's wheelhouse (empty when there is none). */
  wheelhouse: string[];
}

/** What the venv hash is computed from, read from the project folder. */
export function readVenvInputs(sourceDir: string, requirementsFile: string, pythonVersion: string): VenvInputs {
  const wheels = path.join(sourceDir, WHEELHOUSE);
  const wheelhouse = existsSync(wheels)
    ? readdirSync(wheels)
        .filter((name) => statSync(path.join(wheels, name)).isFile())
        .sort()
        .map((name) => `${name} ${statSync(path.join(wheels, name)).size}`)
    : [];
  return { requirements: readFileSync(path.join(sourceDir, requirementsFile), 'utf8'), pythonVersion, wheelhouse };
}

/**
 * The venv's name: a hash of the requirements, the Python version and the
 * wheelhouse listing. Only major.minor of Python counts: a venv links to
 * /usr/bin/python3.X and compiled packages follow its ABI, which Debian's
 * point releases keep, so a security update does not force a rebuild.
 */
export function venvHash(inputs: VenvInputs): string {
  const [major, minor] = inputs.pythonVersion.split('.');
  return createHash('sha256')
    .update(inputs.requirements)
    .update('\0')
    .update(`python ${major}.${minor}`)
    .update('\0')
    .update(inputs.wheelhouse.join('\n'))
    .digest('hex')
    .slice(0, 16);
}

/** True when a requirements file names at least one requirement (not just comments and blank lines). */
export function hasRequirements(requirements: string): boolean {
  return requirements.split('\n').some((line) => line.replace(/(^|\s)#.*$/, '').trim() !== '');
}

export interface VenvBuild {
  /** Absolute path of the venv to use. */
  venv: string;
  /** Requirements file inside the new release. */
  requirementsPath: string;
  /** Wheelhouse inside the new release, when the project has one: pip then uses it and no index. */
  wheelhousePath?: string;
  /** Skip pip: the requirements name nothing. */
  noRequirements: boolean;
  /** `--upgrade-packages`: reinstall (upgrade) into the venv even when it is complete. */
  upgrade: boolean;
}

/**
 * One command that makes the venv ready. It prints `kraftwerk: venv reused`
 * when a complete venv with this hash exists.
 *
 * Why a marker instead of building in a temp folder and renaming it: pip writes
 * the venv's absolute path into every console script it installs (`#!/srv/…/bin/python`),
 * so a venv stops working when it is moved. Building in place and writing the
 * marker last gives the same guarantee: an interrupted build has no marker and
 * is removed and rebuilt by the next deploy, never used.
 */
export function venvCommand(b: VenvBuild): Command {
  const marker = `${b.venv}/${COMPLETE_MARKER}`;
  const pipArgs = [
    '--disable-pip-version-check',
    '--no-input',
    '--root-user-action=ignore',
    '--progress-bar',
    'off',
    ...(b.upgrade ? ['--upgrade', '--upgrade-strategy', 'eager'] : []),
    '-r',
    b.requirementsPath,
    ...(b.wheelhousePath ? ['--no-index', '--find-links', b.wheelhousePath] : []),
  ];
  const pip = b.noRequirements
    ? sh`echo 'kraftwerk: no requirements to install'`
    : sh`${`${b.venv}/bin/python`} -m pip install ${pipArgs}`;
  const reuse = b.upgrade ? sh`` : sh`if [ -f ${marker} ]; then echo 'kraftwerk: venv reused'; exit 0; fi
`;
  return sh`set -e
umask 022
${reuse}if [ ! -f ${marker} ]; then rm -rf ${b.venv}; python3 -m venv --system-site-packages ${b.venv}; fi
rm -f ${marker}
${pip}
touch ${marker}
echo 'kraftwerk: venv built'`;
}
