/**
 * `kraftwerk doctor [node] [--json]`: is everything in place for a deploy, and is what
 * runs healthy? This machine first (ssh, rsync ≥ 3.1, keys, Node.js ≥ 20), then per node:
 * its host key known, the SSH login, setup-node's marker, free disk and inodes, the
 * clock, the node-wide processes and every site's services (the plugins' `nodeStatus`,
 * as `kraftwerk status` reads them), and the checks plugins add (`doctorChecks`: the
 * tls plugin's certificate expiry). Read-only: it records nothing, not even a host key.
 *
 * Without a node (none named, no project or no default node) only this machine is checked.
 * One line per check, ✔ holds, ! holds but wants attention, ✖ does not hold; exit 1 when
 * any check does not hold. --json prints the same as an array.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import type { CoreKit } from '../kit.ts';
import type { Project } from '../../engine/plugin.ts';
import type { Site } from '../../config/site.ts';
import type { Remote, SshTarget } from '../../remote/remote.ts';
import type { NodeStatus } from '../../engine/status.ts';
import { DoctorChecks, type DoctorFinding, type DoctorResult, doctorResult } from '../../engine/doctor.ts';
import { collectFromPlugins } from '../../engine/registry.ts';
import { KraftwerkError, UsageError } from '../../errors.ts';
import { knownHostsName, knownKeyTypes } from '../../remote/knownhosts.ts';
import { expandNodes } from '../../remote/node.ts';
import { NODE_MARKER } from '../../lifecycle/probe.ts';
import { missingPackagesCommand } from '../../shell/apt.ts';
import { maskSecrets, raw, type Script, sh } from '../../shell/sh.ts';
import { collectNodeStatusParts, parseStatus, statusCommand } from './status.ts';
import { nodeContext } from './ops.ts';

/** The oldest versions Kraftwerk works with: rsync's --info=progress2 came with 3.1. */
export const MIN_RSYNC = [3, 1] as const;
export const MIN_NODE = 20;

/**
 * Free space: a deploy writes a release, maybe a virtualenv and a database snapshot, so less
 * than 1 GiB (or 2 % of the filesystem) free fails; below 10 % it is a warning.
 */
export const DISK_FAIL_BYTES = 1024 ** 3;
export const DISK_FAIL_PERCENT = 2;
export const DISK_WARN_PERCENT = 10;
/** Inodes: every release is a tree of files (mostly hard links, each still an entry). */
export const INODE_FAIL_PERCENT = 2;
export const INODE_WARN_PERCENT = 10;
/** How far the node's clock may be from this machine's: release ids, locks and certificates are times. */
export const CLOCK_MAX_OFFSET_SECONDS = 2;

/** The folders whose filesystems are checked for space: the sites' (/srv, and each site's own) and /var (logs, databases). */
const SPACE_PATHS = ['/srv', '/var'];

const MARKS = { ok: '✔', warning: '!', error: '✖' } as const;

// ---------------------------------------------------------------- this machine

/** `3.2.7` from `rsync --version`'s first line (`rsync  version 3.2.7  protocol version 31`). */
export function parseRsyncVersion(text: string): number[] | undefined {
  const m = /version\s+v?(\d+)\.(\d+)(?:\.(\d+))?/.exec(text);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)] : undefined;
}

function atLeast(version: readonly number[], min: readonly number[]): boolean {
  for (let i = 0; i < min.length; i++) {
    const a = version[i] ?? 0;
    if (a !== min[i]) return a > min[i]!;
  }
  return true;
}

export function rsyncFinding(versionText: string | undefined): DoctorFinding {
  const install = 'Install rsync 3.1 or newer (Debian/Ubuntu: apt-get install rsync; macOS: brew install rsync).';
  if (versionText === undefined) return { level: 'error', detail: 'rsync is not installed on this machine', hint: install };
  const v = parseRsyncVersion(versionText);
  if (!v) return { level: 'error', detail: `cannot read rsync's version from "${versionText.split('\n')[0]}"`, hint: install };
  if (!atLeast(v, MIN_RSYNC)) return { level: 'error', detail: `rsync ${v.join('.')} is too old (Kraftwerk needs ${MIN_RSYNC.join('.')} or newer)`, hint: install };
  return { level: 'ok', detail: `rsync ${v.join('.')}` };
}

export function sshFinding(versionText: string | undefined): DoctorFinding {
  if (versionText === undefined) {
    return {
      level: 'error',
      detail: 'the OpenSSH client (ssh) is not installed on this machine',
      hint: 'Install it (Debian/Ubuntu: apt-get install openssh-client): rsync and ~/.ssh/config go through it.',
    };
  }
  return { level: 'ok', detail: versionText.trim().split(/[,\n]/)[0]! };
}

export function nodeVersionFinding(version: string): DoctorFinding {
  const major = Number(version.replace(/^v/, '').split('.')[0]);
  if (!(major >= MIN_NODE)) {
    return { level: 'error', detail: `Node.js ${version} is too old (Kraftwerk needs ${MIN_NODE} or newer)`, hint: `Install Node.js ${MIN_NODE} or newer (https://nodejs.org/, or your package manager).` };
  }
  return { level: 'ok', detail: `Node.js ${version}` };
}

/** What this machine can log in with: the agent's keys, key files that load without a passphrase. */
export interface KeyInventory {
  /** SSH_AUTH_SOCK, when set. */
  agentSocket?: string;
  /** Keys the agent holds; undefined when it does not answer. */
  agentKeys?: number;
  usableFiles: string[];
  /** Key files that cannot be used, each with why. */
  unusable: string[];
}

export function keysFinding(keys: KeyInventory, nodeName?: string): DoctorFinding {
  const parts: string[] = [];
  if (keys.agentSocket && keys.agentKeys !== undefined) parts.push(`ssh-agent holds ${keys.agentKeys} key${keys.agentKeys === 1 ? '' : 's'}`);
  if (keys.usableFiles.length) parts.push(`key file${keys.usableFiles.length > 1 ? 's' : ''} ${keys.usableFiles.join(', ')}`);
  const agentDown = keys.agentSocket && keys.agentKeys === undefined ? `ssh-agent at ${keys.agentSocket} does not answer` : undefined;
  const usable = (keys.agentKeys ?? 0) > 0 || keys.usableFiles.length > 0;
  if (!usable) {
    return {
      level: 'error',
      detail: `no SSH key to log in${nodeName ? ` to ${nodeName}` : ''} with${[agentDown ?? (keys.agentSocket ? 'ssh-agent holds no key' : 'no ssh-agent'), ...keys.unusable].map((s) => `; ${s}`).join('')}`,
      hint: 'Add your key to ssh-agent (ssh-add), create one with ssh-keygen, or set the node\'s identity_file in kraftwerk.yaml.',
    };
  }
  const notes = [agentDown, ...keys.unusable].filter(Boolean);
  return { level: 'ok', detail: [...parts, ...notes].join('; ') };
}

function run(program: string, args: string[]): Promise<{ stdout: string; stderr: string } | undefined> {
  return new Promise((resolve) => {
    const child = execFile(program, args, { timeout: 15_000 }, (error, stdout, stderr) => {
      const e = error as NodeJS.ErrnoException | null;
      resolve(e && (e.code === 'ENOENT' || typeof e.code !== 'number') ? undefined : { stdout, stderr });
    });
    child.stdin?.end();
  });
}

/** The agent's keys (undefined when it does not answer within a few seconds). */
async function agentKeys(socket: string): Promise<number | undefined> {
  const { default: ssh2 } = await import('ssh2');
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(undefined), 5000);
    new ssh2.OpenSSHAgent(socket).getIdentities((err, keys) => {
      clearTimeout(timer);
      resolve(err ? undefined : (keys?.length ?? 0));
    });
  });
}

/** OpenSSH's default identity files, used when no node says which. */
const DEFAULT_IDENTITY_FILES = ['id_rsa', 'id_ecdsa', 'id_ecdsa_sk', 'id_ed25519', 'id_ed25519_sk'].map((f) => path.join(homedir(), '.ssh', f));

async function keyInventory(identityFiles: readonly string[]): Promise<KeyInventory> {
  const { authMethods } = await import('../../remote/ssh.ts');
  const agentSocket = process.env.SSH_AUTH_SOCK || undefined;
  // authMethods reads the files as a login would: a file it can use becomes a `publickey` method.
  const target = { name: '', host: '', port: 22, user: '', identityFiles: [...identityFiles], knownHostsFiles: [] } satisfies SshTarget;
  const { unusable } = authMethods(target);
  const usableFiles = [...new Set(identityFiles)].filter((file) => authMethods({ ...target, identityFiles: [file] }).methods.some((m) => m.type === 'publickey'));
  return { agentSocket, agentKeys: agentSocket ? await agentKeys(agentSocket) : undefined, usableFiles, unusable };
}

async function localChecks(): Promise<DoctorResult[]> {
  const [ssh, rsync] = await Promise.all([run('ssh', ['-V']), run('rsync', ['--version'])]);
  return [
    doctorResult('ssh', null, sshFinding(ssh && (ssh.stderr || ssh.stdout))),
    doctorResult('rsync', null, rsyncFinding(rsync?.stdout)),
    doctorResult('node.js', null, nodeVersionFinding(process.version)),
  ];
}

// ---------------------------------------------------------------- the node

/** One line of `df -P` for a path, as the facts command prints it. */
interface SpaceLine {
  path: string;
  mount: string;
  /** 1024-byte blocks, or inodes. */
  total: number;
  free: number;
}

/** A filesystem that holds some of SPACE_PATHS, with its blocks and inodes. */
export interface FilesystemSpace {
  mount: string;
  /** The folders checked that it holds. */
  holds: string[];
  totalKiB: number;
  freeKiB: number;
  inodes: number;
  freeInodes: number;
}

/**
 * Read-only facts of the node in one command: setup-node's marker and the packages it
 * installed that are missing now, the space of the filesystems holding the sites' folders
 * and /var, and the NTP state when a tool tells it (timedatectl, chronyc; a container or
 * sandbox may have neither).
 */
export function nodeFactsCommand(): Script {
  const paths = SPACE_PATHS.map((p) => sh`${p}`.text).join(' ');
  return sh`if [ -f ${NODE_MARKER} ]; then echo "marker $(tr -d '\\n' < ${NODE_MARKER})"; fi
for d in ${raw(paths)} /srv/*/; do
  [ -d "$d" ] || continue
  d=\${d%/}
  df -P -k "$d" 2>/dev/null | awk -v d="$d" 'NR==2 {print "blocks", d, $NF, $2, $4}'
  df -P -i "$d" 2>/dev/null | awk -v d="$d" 'NR==2 {print "inodes", d, $NF, $2, $4}'
done
if command -v timedatectl >/dev/null 2>&1 && v=$(timeout 5 timedatectl show -p NTPSynchronized --value 2>/dev/null) && [ -n "$v" ]; then echo "ntp timedatectl $v"
elif command -v chronyc >/dev/null 2>&1 && v=$(timeout 5 chronyc -n tracking 2>/dev/null | sed -n 's/^Leap status *: *//p') && [ -n "$v" ]; then echo "ntp chronyc $v"
fi
true`;
}

export interface NodeFacts {
  /** setup-node's marker, parsed; undefined when it is missing. */
  marker?: { packages?: string[] };
  markerUnreadable?: boolean;
  filesystems: FilesystemSpace[];
  ntp?: { tool: string; synced: boolean; text: string };
}

export function parseNodeFacts(output: string): NodeFacts {
  const facts: NodeFacts = { filesystems: [] };
  const blocks: SpaceLine[] = [];
  const inodes: SpaceLine[] = [];
  for (const line of output.split('\n')) {
    const [key, ...rest] = line.trim().split(' ');
    if (key === 'marker') {
      try {
        facts.marker = JSON.parse(rest.join(' ')) as { packages?: string[] };
      } catch {
        facts.marker = {};
        facts.markerUnreadable = true;
      }
    } else if ((key === 'blocks' || key === 'inodes') && rest.length >= 4) {
      const [p = '', mount = '', total = '', free = ''] = rest;
      (key === 'blocks' ? blocks : inodes).push({ path: p, mount, total: Number(total) || 0, free: Number(free) || 0 });
    } else if (key === 'ntp') {
      const [tool = '', ...text] = rest;
      const t = text.join(' ');
      // timedatectl says yes/no; chronyc's leap status is Normal when synchronised.
      facts.ntp = { tool, text: t, synced: tool === 'timedatectl' ? t === 'yes' : t === 'Normal' };
    }
  }
  for (const b of blocks) {
    let fs = facts.filesystems.find((f) => f.mount === b.mount);
    if (!fs) {
      const i = inodes.find((x) => x.mount === b.mount);
      fs = { mount: b.mount, holds: [], totalKiB: b.total, freeKiB: b.free, inodes: i?.total ?? 0, freeInodes: i?.free ?? 0 };
      facts.filesystems.push(fs);
    }
    if (!fs.holds.includes(b.path)) fs.holds.push(b.path);
  }
  return facts;
}

export function formatBytes(kib: number): string {
  if (kib < 1024 * 1024) return `${Math.round(kib / 1024)} MiB`;
  return `${(kib / 1024 / 1024).toFixed(1)} GiB`;
}

const percent = (part: number, whole: number) => (whole > 0 ? (100 * part) / whole : 100);

/** Free space and inodes of one filesystem, against the thresholds above. */
export function spaceFinding(fs: FilesystemSpace): DoctorFinding {
  const freePct = percent(fs.freeKiB, fs.totalKiB);
  // Some filesystems (btrfs) have no fixed inode table and report 0 inodes.
  const inodePct = fs.inodes > 0 ? percent(fs.freeInodes, fs.inodes) : undefined;
  const holds = fs.holds.length > 3 ? `${fs.holds.slice(0, 3).join(', ')} and ${fs.holds.length - 3} more` : fs.holds.join(', ');
  const detail = `${fs.mount} (holds ${holds}): ${formatBytes(fs.freeKiB)} free (${Math.floor(freePct)}%)${inodePct === undefined ? '' : `, ${Math.floor(inodePct)}% of inodes free`}`;
  const hint = `Free space on ${fs.mount}: old releases and backups (kraftwerk releases, kraftwerk backups), logs under /var/log, apt's cache (apt-get clean).`;
  const thresholds = `needs ≥ ${formatBytes(DISK_FAIL_BYTES / 1024)} and ≥ ${DISK_FAIL_PERCENT}% free, warns below ${DISK_WARN_PERCENT}%`;
  if (fs.freeKiB * 1024 < DISK_FAIL_BYTES || freePct < DISK_FAIL_PERCENT) return { level: 'error', detail: `${detail}; too little space (${thresholds})`, hint };
  if (inodePct !== undefined && inodePct < INODE_FAIL_PERCENT) {
    return { level: 'error', detail: `${detail}; too few inodes (needs ≥ ${INODE_FAIL_PERCENT}% free)`, hint: `${hint} Many small files use inodes up: look for folders with many files (du --inodes).` };
  }
  if (freePct < DISK_WARN_PERCENT) return { level: 'warning', detail: `${detail}; getting full (warns below ${DISK_WARN_PERCENT}% free)`, hint };
  if (inodePct !== undefined && inodePct < INODE_WARN_PERCENT) return { level: 'warning', detail: `${detail}; inodes getting scarce (warns below ${INODE_WARN_PERCENT}% free)`, hint };
  return { level: 'ok', detail };
}

export function setupFinding(facts: NodeFacts, missingPackages: readonly string[], node: string): DoctorFinding {
  const hint = `Run: kraftwerk setup-node ${node}`;
  if (!facts.marker) return { level: 'error', detail: `not set up for Kraftwerk (no ${NODE_MARKER})`, hint };
  if (facts.markerUnreadable) return { level: 'error', detail: `${NODE_MARKER} is unreadable`, hint };
  if (missingPackages.length) return { level: 'error', detail: `set up, but packages are missing now: ${missingPackages.join(', ')}`, hint };
  const n = facts.marker.packages?.length;
  return { level: 'ok', detail: `set up (${NODE_MARKER}${n ? `; its ${n} packages installed` : ''})` };
}

/**
 * The node's clock against this machine's: `nodeSeconds` was read between `sentMs` and
 * `receivedMs` (this machine's clock), so it is off by at least |offset| − half the round trip.
 */
export function clockFinding(nodeSeconds: number, sentMs: number, receivedMs: number, ntp: NodeFacts['ntp']): DoctorFinding {
  const middle = (sentMs + receivedMs) / 2000;
  const slack = (receivedMs - sentMs) / 2000;
  const offset = nodeSeconds - middle;
  const off = Math.max(0, Math.abs(offset) - slack);
  const ntpText = ntp ? `NTP ${ntp.synced ? 'synchronised' : `not synchronised (${ntp.tool}: ${ntp.text})`}` : 'no NTP tool to ask (timedatectl, chronyc)';
  const detail = `${Number.isFinite(offset) ? `${Math.abs(offset).toFixed(1)} s ${offset >= 0 ? 'ahead of' : 'behind'} this machine (±${slack.toFixed(1)} s)` : 'the node did not tell its time'}; ${ntpText}`;
  const hint = 'Keep both clocks in sync with NTP (on Debian: apt-get install systemd-timesyncd, or chrony).';
  if (!Number.isFinite(offset) || off > CLOCK_MAX_OFFSET_SECONDS) {
    return { level: 'error', detail: `${detail}; more than ${CLOCK_MAX_OFFSET_SECONDS} s apart`, hint: `${hint} Release ids, deploy locks and certificates are times.` };
  }
  if (ntp && !ntp.synced) return { level: 'warning', detail, hint };
  return { level: 'ok', detail };
}

/** The node-wide processes the plugins named (nginx, databases, the supervisor): all running? */
export function processesFinding(status: NodeStatus, node: string): DoctorFinding | undefined {
  const entries = Object.entries(status.system);
  if (!entries.length) return undefined;
  const stopped = entries.filter(([, s]) => s !== 'running').map(([n]) => n);
  if (stopped.length) {
    return {
      level: 'error',
      detail: `${stopped.join(', ')} not running`,
      hint: `Start ${stopped.length > 1 ? 'them' : 'it'} on the node (kraftwerk setup-node ${node} starts the stack's services); kraftwerk status ${node} shows the rest.`,
    };
  }
  return { level: 'ok', detail: `${entries.map(([n]) => n).join(', ')} running` };
}

/**
 * Every site on the node: the services meant to run (the supervisor's `wanted`, or the one
 * serving the live release) do run. A spare, stopped on purpose, is fine.
 */
export function siteFindings(status: NodeStatus, node: string, project?: Site): DoctorFinding[] {
  const out: DoctorFinding[] = [];
  for (const site of status.sites) {
    if (!site.release) {
      // The project's own site not deployed here is worth saying; another project's half-made site too.
      out.push({ check: 'services', level: 'warning', detail: `${site.name}: not deployed`, hint: site.name === project?.name ? `Deploy it: kraftwerk deploy ${node}` : `Deploy it from its project, or remove it: kraftwerk destroy ${node}` });
      continue;
    }
    const meant = site.services.filter((s) => s.wanted === 'up' || (s.release !== undefined && s.release === site.release));
    const down = meant.filter((s) => s.state !== 'run');
    if (down.length) {
      const starts = down.map((s) => s.start).filter(Boolean);
      out.push({
        check: 'services',
        level: 'error',
        detail: `${site.name}: ${down.map((s) => `${s.service} ${s.state}${s.note ? ` (${s.note})` : ''}`).join(', ')}`,
        hint: `${starts.length ? `Start ${down.length > 1 ? 'them' : 'it'} on the node as root: ${starts.join('; ')}` : 'Start it on the node'}; why it stopped: kraftwerk logs ${node}${site.name === project?.name ? '' : ` (in ${site.name}'s project)`}`,
      });
      continue;
    }
    out.push({ check: 'services', level: 'ok', detail: `${site.name}: release ${site.release}; ${meant.length ? `${meant.map((s) => s.service).join(', ')} running` : 'no services to run'}` });
  }
  if (!status.sites.length) out.push({ check: 'services', level: 'ok', detail: 'no Kraftwerk sites on this node' });
  return out;
}

function failed(error: unknown): DoctorFinding {
  if (error instanceof KraftwerkError) return { level: 'error', detail: maskSecrets(error.message).split('\n')[0]!, hint: error.hint && maskSecrets(error.hint).replaceAll('\n', ' ') };
  return { level: 'error', detail: `the check failed: ${error instanceof Error ? error.message : String(error)}` };
}

/** known_hosts lists the node: doctor never connects to a host it does not know (nor records its key). */
export function knownHostsFinding(target: SshTarget, node: string): DoctorFinding {
  const name = knownHostsName(target.host, target.port, target.hostKeyAlias);
  const files = target.knownHostsFiles.filter((f) => existsSync(f));
  if (knownKeyTypes(target.knownHostsFiles, [name]).length) return { level: 'ok', detail: `${name} is in ${files.length ? files.join(', ') : 'known_hosts'}` };
  return {
    level: 'error',
    detail: `${name} is not in known_hosts (${target.knownHostsFiles[0] ?? '~/.ssh/known_hosts'}); the node was not checked`,
    hint: `Connect once and record its key, after checking the fingerprint it shows: kraftwerk --accept-new-host-key status ${node} (or ssh ${target.user}@${target.host}${target.port !== 22 ? ` -p ${target.port}` : ''})`,
  };
}

async function nodeChecks(kit: CoreKit, project: Project | undefined, node: string, plugins: { parts: ReturnType<typeof collectNodeStatusParts>; checks: DoctorChecks; site: Site }): Promise<DoctorResult[]> {
  const results: DoctorResult[] = [];
  const add = (check: string, finding: DoctorFinding | undefined, plugin: string | null = null) => {
    if (finding) results.push(doctorResult(check, node, finding, plugin));
  };
  let target: SshTarget;
  try {
    target = await kit.resolveNode(node, project);
  } catch (error) {
    add('login', failed(error));
    return results;
  }
  add('ssh keys', keysFinding(await keyInventory(target.identityFiles.length ? target.identityFiles : DEFAULT_IDENTITY_FILES.filter((f) => existsSync(f))), node));
  const known = knownHostsFinding(target, node);
  add('known_hosts', known);
  if (known.level === 'error') return results;

  let remote: Remote;
  try {
    remote = await kit.connect(target);
  } catch (error) {
    add('login', failed(error));
    return results;
  }
  add('login', { level: 'ok', detail: `${target.user}@${target.host}${target.port !== 22 ? `:${target.port}` : ''}${target.sudo ? ' (commands through sudo)' : ''}` });

  try {
    const sentMs = Date.now();
    const clock = await remote.exec(sh`date +%s.%N`);
    const receivedMs = Date.now();
    const { stdout } = await remote.exec(nodeFactsCommand(), { timeoutMs: 60_000 });
    const facts = parseNodeFacts(stdout);
    const packages = facts.marker?.packages ?? [];
    const missing = packages.length ? (await remote.exec(missingPackagesCommand(packages))).stdout.split('\n').map((s) => s.trim()).filter(Boolean) : [];
    add('setup-node', setupFinding(facts, missing, node));
    for (const fs of facts.filesystems) add('disk', spaceFinding(fs));
    add('clock', clockFinding(Number(clock.stdout.trim()), sentMs, receivedMs, facts.ntp));
  } catch (error) {
    add('node facts', failed(error));
  }

  try {
    const status = parseStatus(node, (await remote.exec(statusCommand(plugins.parts))).stdout, plugins.parts);
    add('processes', processesFinding(status, node));
    for (const f of siteFindings(status, node, project?.site)) add('services', f);
  } catch (error) {
    add('services', failed(error));
  }

  const ctx = nodeContext(kit, plugins.site, node, remote);
  for (const check of plugins.checks.nodeChecks) {
    let found: DoctorFinding | readonly DoctorFinding[] | undefined;
    try {
      found = await check.run(ctx);
    } catch (error) {
      found = failed(error);
    }
    for (const f of [found ?? []].flat()) add(check.name, f, check.plugin);
  }
  return results;
}

// ---------------------------------------------------------------- output

export function formatDoctorLine(r: DoctorResult): string {
  return `${MARKS[r.level]} ${r.node ? `${r.node}: ` : ''}${r.check}: ${r.detail}${r.hint && r.level !== 'ok' ? ` → ${r.hint}` : ''}`;
}

/** 0 when every check holds (warnings included), 1 otherwise. */
export function doctorExitCode(results: readonly DoctorResult[]): number {
  return results.every((r) => r.ok) ? 0 : 1;
}

/** The nodes to check: the one named (or its group), else the project's default; none outside a project. */
function nodesToCheck(project: Project | undefined, nodeArg: string | undefined): string[] {
  if (nodeArg && !project) return [nodeArg];
  if (!project) return [];
  try {
    return expandNodes(nodeArg, project.site.config, project.site.configFile);
  } catch (error) {
    // No node named and none by default: this machine alone is still worth checking.
    if (!nodeArg && error instanceof UsageError) return [];
    throw error;
  }
}

export async function doctorCommand(kit: CoreKit, nodeArg: string | undefined, options: { json?: boolean }): Promise<void> {
  const project = await kit.maybeProject();
  const nodes = nodesToCheck(project, nodeArg);
  const results = await localChecks();
  const dryRun = kit.options().dryRun;
  const print = (rs: readonly DoctorResult[]) => {
    if (!options.json) for (const r of rs) process.stdout.write(`${formatDoctorLine(r)}\n`);
  };
  print(results);
  if (!nodes.length) {
    // Which key a node takes is the node's (ssh config, identity_file): without one, missing default keys only warn.
    const keys = keysFinding(await keyInventory(DEFAULT_IDENTITY_FILES.filter((f) => existsSync(f))));
    results.push(doctorResult('ssh keys', null, keys.level === 'error' ? { ...keys, level: 'warning' } : keys));
    print(results.slice(-1));
    if (!options.json) process.stderr.write('No node given: only this machine was checked (name a node, or set default_node in kraftwerk.yaml).\n');
  } else if (dryRun) {
    if (!options.json) process.stderr.write('--dry-run: the nodes were not checked (doctor only reads, run it without --dry-run).\n');
  } else {
    // What every node runs is checked also for sites of other projects, as `kraftwerk status` shows them.
    const { plugins, site } = await kit.nodeWide(project);
    const parts = collectNodeStatusParts(plugins, site);
    const checks = collectFromPlugins(plugins, 'doctorChecks', new DoctorChecks(), site);
    for (const node of nodes) {
      const found = await nodeChecks(kit, project, node, { parts, checks, site });
      print(found);
      results.push(...found);
    }
  }
  if (options.json) process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
  process.exitCode = doctorExitCode(results);
}
