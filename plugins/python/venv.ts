import { createHash } from 'node:crypto';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { type Script, quote, raw, sh } from '../../core/index.ts';
import { type Dependencies, dependencyText } from './requirements.ts';

/** Folder in a project that holds wheels to install from instead of a package index. */
export const WHEELHOUSE = 'wheels';

/** Marks a venv whose build finished; a venv without it is rebuilt, never reused. */
export const COMPLETE_MARKER = '.kraftwerk-complete';

export interface VenvInputs {
  /** The dependencies: a requirements file's text, or a pyproject's list one per line (dependencyText). */
  requirements: string;
  /** Python version on the node, e.g. "3.11.2". */
  pythonVersion: string;
  /** Names and sizes of the files in the project's wheelhouse (empty when there is none). */
  wheelhouse: string[];
}

/** What the venv hash is computed from: the dependencies (read by readDependencies) and the project's wheelhouse. */
export function readVenvInputs(sourceDir: string, deps: Dependencies, pythonVersion: string): VenvInputs {
  const wheels = path.join(sourceDir, WHEELHOUSE);
  const wheelhouse = existsSync(wheels)
    ? readdirSync(wheels)
        .filter((name) => statSync(path.join(wheels, name)).isFile())
        .sort()
        .map((name) => `${name} ${statSync(path.join(wheels, name)).size}`)
    : [];
  return { requirements: dependencyText(deps), pythonVersion, wheelhouse };
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

/**
 * The user pip runs as: one per site, `kwb-<site>` (site names have at most 28
 * characters, so it fits useradd's 32), whose primary group is the site's.
 * Building an sdist runs the package's code (setup.py, a build backend); as root
 * that code would own the node. As the site user it could not be kept out of
 * the venv afterwards: the live app, run by that user from untrusted requests,
 * could then rewrite the packages every later release imports. So a venv is
 * owned by the build user and only readable (0755/0644) to the site's group, and
 * no process of the build user outlives a build. The build user can read what
 * the site's group reads (the release, its environment): that is the same code,
 * which runs with that environment as soon as the app imports it. (piku runs pip
 * as the app's user, venv writable by the app; Dokku builds in a container.)
 */
export function buildUser(siteName: string): string {
  return `kwb-${siteName}`;
}

/** Create the build user when it is missing (a system user: no home, no login). */
export function buildUserCommand(user: string, group: string, webGroup?: string): Script {
  const create = sh`id -u ${user} >/dev/null 2>&1 || useradd --system --gid ${group} --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin ${user}`;
  // /srv/<site> is the site's web group's (core's siteWebGroup): the build user passes through it to venvs/ and the release.
  return webGroup ? sh`${create}
id -nG ${user} | tr ' ' '\n' | grep -qx ${webGroup} || usermod -aG ${webGroup} ${user}` : create;
}

/** Remove the build user, with any process of it (destroy; the venvs go with the site's folders). */
export function removeBuildUserCommand(user: string): Script {
  return sh`if id -u ${user} >/dev/null 2>&1; then pkill -KILL -u ${user} 2>/dev/null; sleep 0.2; userdel ${user}; fi; true`;
}

export interface VenvBuild {
  /** The site's venvs folder (root's, the site group may read it). */
  venvs: string;
  /** venvHash of the release's inputs. */
  hash: string;
  /** The live release's `.venv` link: when it names a complete venv of this hash, that one is reused. */
  liveLink: string;
  /** `--upgrade-packages`: build a new venv `<hash>-u<stamp>` (the release id) with upgraded packages. */
  upgradeStamp?: string;
  /** Who runs venv and pip (buildUser), and the site's group, which may read the venv. */
  user: string;
  group: string;
  /** The site's web group, which owns /srv/<site> (see core's siteWebGroup): the build user passes through. */
  webGroup?: string;
  /** What pip installs: a requirements file inside the new release, or a pyproject's requirements; none: skip pip. */
  install: { requirementsPath: string } | { specs: string[] } | undefined;
  /**
   * Wheelhouse inside the new release, when the project has one: pip then uses it and no
   * index, and builds an sdist found there with the venv's own setuptools (Debian's, through
   * the system site packages) rather than in an isolated environment, which would fetch its
   * build requirements from an index.
   */
  wheelhousePath?: string;
}

/** The line venvCommand ends with: `kraftwerk: venv <name> reused|built`. */
export function parseVenvResult(stdout: string): { name: string; how: 'reused' | 'built' } | undefined {
  const m = /^kraftwerk: venv (\S+) (reused|built)$/m.exec(stdout);
  return m ? { name: m[1]!, how: m[2] as 'reused' | 'built' } : undefined;
}

/**
 * The complete venv of this hash a deploy reuses, from the probe's listing of
 * `<venvs>/<name>/.kraftwerk-complete` (in the shell's glob order), by venvCommand's own rule:
 * the live release's venv when it is one of them, else the last of `<hash>`,
 * `<hash>-u*`. Undefined: none, venvCommand builds one. With it the usual deploy
 * needs no command here; the deploy's lock keeps it from being pruned meanwhile.
 */
export function reusableVenv(venvs: string, hash: string, completeMarkers: readonly string[], liveVenv?: string): string | undefined {
  const names = completeMarkers
    .filter((marker) => path.posix.dirname(path.posix.dirname(marker)) === venvs)
    .map((marker) => path.posix.basename(path.posix.dirname(marker)));
  // The shell's order of `<hash> <hash>-u*`: the plain one first (a glob of the markers sorts `-` before `/`).
  const upgrades = names.filter((n) => n.startsWith(`${hash}-u`)).sort();
  const candidates = [...(names.includes(hash) ? [hash] : []), ...upgrades];
  return candidates.find((n) => `${venvs}/${n}` === liveVenv) ?? candidates.at(-1);
}

/**
 * One command that makes the venv ready and names it on its last line
 * (parseVenvResult). Without an upgrade it reuses a complete venv of this
 * hash: the live release's own when it is one (an earlier upgrade stays in
 * use), else the newest; else it builds `<hash>`. With `--upgrade-packages`
 * it builds `<hash>-u<stamp>` beside the others: the live venv is never
 * changed, so a failed or interrupted pip leaves the live release, and every
 * release a rollback can go to, with its packages.
 *
 * Why a marker instead of building in a temp folder and renaming it: pip writes
 * the venv's absolute path into every console script it installs (`#!/srv/…/bin/python`),
 * so a venv stops working when it is moved. Building in place and writing the
 * marker last gives the same guarantee: an interrupted build has no marker and
 * is never used; the next build of that name starts afresh, and a partial
 * upgrade that no release uses is removed by pruneVenvsCommand.
 *
 * Root only creates the empty folder, removes partial ones (rm does not follow
 * symlinks) and writes the marker; venv and pip run as `user` (see buildUser).
 */
export function venvCommand(b: VenvBuild): Script {
  const target = b.upgradeStamp ? `${b.hash}-u${b.upgradeStamp}` : b.hash;
  const path = `${b.venvs}/${target}`;
  const pipArgs = [
    '--disable-pip-version-check',
    '--no-input',
    '--no-cache-dir',
    '--progress-bar',
    'off',
    ...(b.upgradeStamp ? ['--upgrade', '--upgrade-strategy', 'eager'] : []),
    ...(b.wheelhousePath ? ['--no-index', '--find-links', b.wheelhousePath, '--no-build-isolation'] : []),
    // A pyproject's requirements after `--`: each starts with a name (pyprojectDependencies), never an option.
    ...(!b.install ? [] : 'specs' in b.install ? ['--', ...b.install.specs] : ['-r', b.install.requirementsPath]),
  ];
  const pip = !b.install
    ? sh`echo 'kraftwerk: no requirements to install'`
    : sh`${`${path}/bin/python`} -m pip install ${pipArgs}`;
  // Written by the build user, then its own files lose group and other write (a package may set modes of its own).
  const build = sh`set -e; umask 022; export HOME=${path}; python3 -m venv --system-site-packages ${path}; ${pip}; chmod -R go-w ${path}`;
  const reuse = b.upgradeStamp
    ? sh``
    : sh`live=$(readlink ${b.liveLink} 2>/dev/null || true)
found=
for d in ${raw(`${quote(b.hash)} ${quote(b.hash)}-u*`)}; do
  [ -f "$d/${raw(COMPLETE_MARKER)}" ] || continue
  found=$d
  [ ${`${b.venvs}/`}"$d" = "$live" ] && break
done
if [ -n "$found" ]; then echo "kraftwerk: venv $found reused"; exit 0; fi
`;
  return sh`set -e
cd ${b.venvs}
${reuse}${buildUserCommand(b.user, b.group, b.webGroup)}
rm -rf -- ${target}
install -d -m 0755 -o ${b.user} -g ${b.group} ${target}
cd /
# No process of the build user outlives the build (kill -1 as that user reaches only its own).
status=0; runuser -u ${b.user} -- sh -c ${build.text} || status=$?
runuser -u ${b.user} -- sh -c 'kill -KILL -1 2>/dev/null' || true
[ "$status" = 0 ] || exit "$status"
touch ${`${path}/${COMPLETE_MARKER}`}
echo ${`kraftwerk: venv ${target} built`}`;
}

/**
 * Remove the venvs no kept release uses. Runs after core wrote the release
 * record and pruned the release folders, so the folders left are the kept
 * releases, and each names its venv in its `.venv` link (a rollback target's
 * too); `keep` (this deploy's venv) always stays. Partial venvs that no
 * release names go as well. The links sit in release folders the site's group
 * may write: a link the site made there can only keep a venv longer, never
 * remove one (and root only reads it). Prints `pruned venv <name>` for each.
 */
export function pruneVenvsCommand(p: { venvs: string; releases: string; keep: string }): Script {
  return sh`cd ${p.venvs} 2>/dev/null || exit 0
used=$({ for r in ${p.releases}/*/; do readlink "$r.venv" 2>/dev/null; done; echo ${p.keep}; } | sort -u)
for d in */; do
  d=\${d%/}
  printf '%s\\n' "$used" | grep -qxF ${`${p.venvs}/`}"$d" && continue
  rm -rf -- "$d" && echo "pruned venv $d"
done; true`;
}
