/**
 * Debian packages on a node: which are missing, and installing them. Shared by
 * setup-node (the stack), the python plugin (a site's `apt:` packages) and any
 * plugin that needs a package of its own (the tls plugin's certbot).
 */
import { type Script, raw, sh } from './sh.ts';

/** Lists which of `packages` are not installed (one per line). Read-only. */
export function missingPackagesCommand(packages: string[]): Script {
  return sh`for p in ${packages}; do dpkg-query -W -f='\${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || echo "$p"; done`;
}

/**
 * apt-get install, non-interactive, without recommends (a server gets what it
 * asks for), keeping config files the admin changed. An apt run already going on
 * (unattended upgrades) is waited for, not failed on.
 */
function aptGetInstall(packages: string[] | Script): Script {
  return sh`apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=120 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold ${packages}`;
}

export interface AptInstallOptions {
  /**
   * `first` (the default): update the package lists, then install (a fresh node
   * may have none). `on-failure`: install, and only when that fails update the
   * lists and try again (lists of a node set up long ago may be stale).
   */
  update?: 'first' | 'on-failure';
}

/** Install `packages` (all of them: apt skips those already installed). */
export function aptInstallCommand(packages: string[] | Script, options: AptInstallOptions = {}): Script {
  const install = aptGetInstall(packages);
  return options.update === 'on-failure'
    ? sh`export DEBIAN_FRONTEND=noninteractive && { ${install} || { apt-get update -q && ${install}; }; }`
    : sh`export DEBIAN_FRONTEND=noninteractive && apt-get update -q && ${install}`;
}

/**
 * Install those of `packages` that are missing, in one round trip; prints
 * `kraftwerk: apt unchanged` when all are installed, else
 * `kraftwerk: installing <names>` and apt's output.
 */
export function aptEnsureCommand(packages: string[]): Script {
  return sh`missing=$(${missingPackagesCommand(packages)})
if [ -z "$missing" ]; then echo 'kraftwerk: apt unchanged'; exit 0; fi
echo "kraftwerk: installing" $missing
${aptInstallCommand(raw('$missing'), { update: 'on-failure' })}`;
}
