/**
 * Sandbox servers: throwaway Debian hosts made on this Linux machine from a
 * cached debootstrap root, each in its own network, PID, mount and UTS
 * namespaces, with runsvdir as PID 1 and a real sshd. Used by
 * `kraftwerk sandbox …` and by the end-to-end tests.
 *
 * commands.ts builds every command; rootfs.ts provides roots, shared.ts the
 * apt proxy; this file decides the order, runs the steps and keeps the state
 * file true.
 */
import { mkdir, readFile, readdir, readlink, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { KraftwerkError, UsageError, lastLines, type SshTarget } from '../../core/index.ts';
import { addHostsEntry, removeHostsEntries } from '../hosts-file.ts';
import {
  HOST_PUBLIC_KEYS_SCRIPT,
  ROOTFS_SPEC,
  SANDBOX_ROOTS_DIR,
  SNAPSHOT_DIR,
  bootScript,
  clientKeygenArgv,
  hostKeygenArgv,
  knownHostsLines,
  launchArgv,
  networkDownArgvs,
  networkUpArgvs,
  personalizeScript,
  sandboxRootFiles,
  tarCreateArgv,
} from './commands.ts';
import {
  fileExists,
  hostIPv4Addresses,
  onPath,
  removeTree,
  signalAll,
  sleep,
  spawnDetached,
  sshAnswers,
  startTimeOf,
  waitUntil,
} from './host.ts';
import { PROXY_ADDRESS, PROXY_PORT, allocateSubnet, checkSandboxName, sandboxNetNames } from './naming.ts';
import {
  TAR_TIMEOUT_MS,
  ensureRootfs,
  makeRoot,
  removeStaleUnpacked,
  rootfsTarball,
  snapshotPath,
  type Progress,
} from './rootfs.ts';
import { packageOf, runLocal } from './run.ts';
import { ensureSharedNetwork, stopSharedIfUnused } from './shared.ts';
import { processExists, readState, sandboxStateDir, updateState, type SandboxRecord, type SandboxState } from './state.ts';

export { DEFAULT_SANDBOX_NAME } from './naming.ts';
export { ensureRootfs, hasSnapshot, removeSnapshot, rootfsTarball, snapshotPath, type Progress } from './rootfs.ts';
export { ensureProxyRunning } from './shared.ts';
export type { SandboxRecord } from './state.ts';

const SSH_WAIT_MS = 20_000;
const KILL_WAIT_MS = 10_000;

export interface SandboxUpOptions {
  /** Progress lines (debootstrap output on a cold cache, then each step). */
  onProgress?: Progress;
  /** Start from a snapshot saved by `saveSnapshot` instead of the plain cached root. */
  fromSnapshot?: string;
}

export interface SandboxInfo {
  name: string;
  address: string;
  target: SshTarget;
  record: SandboxRecord;
  /** True when the sandbox was already running and was left as it was. */
  reused: boolean;
}

export interface SandboxListing {
  name: string;
  address: string;
  state: 'up' | 'down' | 'creating';
}

/** Sandboxes need namespaces, chroot and mounts: Linux and root. */
export function assertSandboxSupport(): void {
  if (process.platform !== 'linux') {
    throw new UsageError(`sandboxes need Linux and root; this is ${process.platform}`, {
      hint: 'Run kraftwerk sandbox on a Linux machine (or VM) as root.',
    });
  }
  if (process.getuid?.() !== 0) {
    throw new UsageError('sandboxes need Linux and root; this process is not root', {
      hint: 'Run it as root, e.g. sudo kraftwerk sandbox …',
    });
  }
}

const REQUIRED_PROGRAMS = ['ip', 'unshare', 'chroot', 'mount', 'mknod', 'tar', 'ssh-keygen', 'rm', 'umount'];

/** Programs this machine lacks for making a sandbox (debootstrap only matters while the root is not cached). */
export async function missingPrograms(): Promise<string[]> {
  const needed = [...REQUIRED_PROGRAMS];
  if (!(await fileExists(rootfsTarball(ROOTFS_SPEC)))) needed.push('debootstrap');
  const missing: string[] = [];
  for (const p of needed) if (!(await onPath(p))) missing.push(p);
  return missing;
}

async function assertPrograms(): Promise<void> {
  const missing = await missingPrograms();
  if (missing.length > 0) {
    const packages = [...new Set(missing.map(packageOf))];
    throw new UsageError(`sandboxes need these programs, which are not installed: ${missing.join(', ')}`, {
      hint: `On Debian: apt-get install ${packages.join(' ')}`,
    });
  }
}

/**
 * Save the root of a running sandbox as snapshot `key`. Its processes are
 * frozen while tar reads, so databases on disk are in the state of a crash at
 * one instant, which they recover from.
 */
export async function saveSnapshot(name: string, key: string, onProgress: Progress = () => {}): Promise<string> {
  assertSandboxSupport();
  const file = snapshotPath(key);
  const record = (await readState()).sandboxes[name];
  if (!record || !isRunning(record)) {
    throw new KraftwerkError(`sandbox ${name} is not running; cannot snapshot it`, {
      hint: `Start it with: kraftwerk sandbox up ${name}`,
    });
  }
  await mkdir(SNAPSHOT_DIR, { recursive: true });
  const pids = await sandboxPids(record);
  const tmp = `${file}.${process.pid}.tmp`;
  onProgress(`saving snapshot ${key}`);
  signalAll(pids, 'SIGSTOP');
  try {
    await runLocal(
      [...tarCreateArgv(record.root, tmp).slice(0, -1), '--exclude=./var/cache/apt/archives/*.deb', '.'],
      { timeoutMs: TAR_TIMEOUT_MS },
    );
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  } finally {
    signalAll(pids, 'SIGCONT');
  }
  await rename(tmp, file);
  await removeStaleUnpacked();
  return file;
}

function recordFor(name: string, state: SandboxState, hostAddresses: string[]): SandboxRecord {
  const net = sandboxNetNames(name);
  for (const other of Object.values(state.sandboxes)) {
    if (other.name !== name && other.vethHost === net.vethHost) {
      throw new UsageError(`sandbox names ${name} and ${other.name} map to the same interface name ${net.vethHost}`, {
        hint: 'Choose another sandbox name.',
      });
    }
  }
  const used = Object.values(state.sandboxes)
    .filter((s) => s.name !== name)
    .map((s) => s.subnetIndex);
  const subnet = allocateSubnet(used, hostAddresses);
  const dir = join(SANDBOX_ROOTS_DIR, name);
  const stateDir = sandboxStateDir(name);
  return {
    name,
    status: 'creating',
    address: subnet.address,
    hostAddress: subnet.hostAddress,
    subnetIndex: subnet.index,
    ...net,
    dir,
    root: join(dir, 'root'),
    stateDir,
    keyFile: join(stateDir, 'id_ed25519'),
    knownHostsFile: join(stateDir, 'known_hosts'),
    consoleLog: join(stateDir, 'console.log'),
    createdAt: new Date().toISOString(),
    creatorPid: process.pid,
  };
}

/**
 * Create and boot sandbox `name` (or return it when it already runs). A
 * leftover of the same name (a killed earlier run) is removed first. On any
 * failure, everything made so far is removed again.
 */
export async function sandboxUp(name: string, options: SandboxUpOptions = {}): Promise<SandboxInfo> {
  assertSandboxSupport();
  checkSandboxName(name);
  const progress = options.onProgress ?? (() => {});
  const snapshot = options.fromSnapshot === undefined ? undefined : snapshotPath(options.fromSnapshot);
  if (snapshot && !(await fileExists(snapshot))) {
    throw new UsageError(`snapshot ${options.fromSnapshot} does not exist (${snapshot})`);
  }
  await assertPrograms();

  const existing = (await readState()).sandboxes[name];
  if (existing && isBeingCreated(existing)) {
    throw new KraftwerkError(`sandbox ${name} is being created by another process (PID ${existing.creatorPid})`, {
      hint: `Wait for it, or use another name. If that process hangs: kraftwerk sandbox down ${name}`,
    });
  }
  if (existing?.status === 'up' && isRunning(existing) && (await sshAnswers(existing.address, 2000))) {
    if (existing.snapshot === options.fromSnapshot) {
      progress(`sandbox ${name} is already up at ${existing.address}`);
      return info(existing, true);
    }
  }
  if (existing || (await fileExists(join(SANDBOX_ROOTS_DIR, name)))) {
    progress(`removing the earlier sandbox ${name}`);
    await removeSandbox(name, { keepShared: true, onProgress: progress });
  }

  const hostAddresses = await hostIPv4Addresses();
  const record = await updateState((state) => {
    const r = recordFor(name, state, hostAddresses);
    if (options.fromSnapshot) r.snapshot = options.fromSnapshot;
    state.sandboxes[name] = r;
    return r;
  });

  try {
    const tarball = snapshot ?? (await ensureRootfs(progress));
    record.lower = await makeRoot(record, tarball, progress);
    await updateState((state) => {
      state.sandboxes[name] = { ...record };
    });

    progress('generating host and login keys');
    await mkdir(record.stateDir, { recursive: true, mode: 0o700 });
    await rm(record.keyFile, { force: true });
    await rm(`${record.keyFile}.pub`, { force: true });
    await runLocal(clientKeygenArgv(record.keyFile, `kraftwerk-sandbox-${name}`));
    await runLocal(['chroot', record.root, 'sh', '-c', 'rm -f /etc/ssh/ssh_host_*']);
    await runLocal(hostKeygenArgv(record.root));
    const hostKeys = (await runLocal(['chroot', record.root, 'sh', '-c', HOST_PUBLIC_KEYS_SCRIPT.text])).stdout;
    await writeFile(record.knownHostsFile, knownHostsLines(record.address, hostKeys.split('\n')), { mode: 0o600 });

    const files = sandboxRootFiles({
      name,
      address: record.address,
      proxyUrl: `http://${PROXY_ADDRESS}:${PROXY_PORT}/`,
      authorizedKeys: [await readFile(`${record.keyFile}.pub`, 'utf8'), ...(await userPublicKeys())],
    });
    await runLocal(['chroot', record.root, 'sh', '-c', personalizeScript(files).text]);

    progress('starting the apt proxy');
    await ensureSharedNetwork();

    progress(`network: ${record.address}/30 via ${record.vethHost}`);
    for (const argv of networkUpArgvs(record, { index: record.subnetIndex, address: record.address, hostAddress: record.hostAddress, prefix: 30 })) {
      await runLocal(argv);
    }

    progress('booting (runsvdir → sshd)');
    const { pid, pidStartTime } = await launch(record);
    Object.assign(record, { pid, pidStartTime });
    await updateState((state) => {
      state.sandboxes[name] = { ...record };
    });

    progress('waiting for sshd');
    await waitForSsh(record);
    record.status = 'up';
    delete record.creatorPid;
    await updateState((state) => {
      state.sandboxes[name] = { ...record };
    });
    progress(`sandbox ${name} is up at ${record.address}`);
    return info(record, false);
  } catch (e) {
    await removeSandbox(name, { keepShared: false }).catch(() => {});
    throw e;
  }
}

function info(record: SandboxRecord, reused: boolean): SandboxInfo {
  return { name: record.name, address: record.address, target: targetOf(record), record, reused };
}

/** How core reaches a sandbox: its own key, its own known_hosts (host key checking stays on). */
export function targetOf(record: SandboxRecord): SshTarget {
  return {
    name: record.name,
    host: record.address,
    port: 22,
    user: 'root',
    identityFiles: [record.keyFile],
    knownHostsFiles: [record.knownHostsFile],
  };
}

/** The SshTarget of a recorded sandbox; undefined when there is no sandbox of that name. */
export async function sandboxTarget(name: string): Promise<SshTarget | undefined> {
  const record = (await readState()).sandboxes[name];
  return record ? targetOf(record) : undefined;
}

/** The user's own public keys (also those of the user who ran sudo), so plain `ssh root@address` works too. */
async function userPublicKeys(): Promise<string[]> {
  const homes = new Set<string>();
  try {
    homes.add(homedir());
  } catch {
    // no home: only the sandbox's own key
  }
  const sudoUser = process.env.SUDO_USER;
  if (sudoUser) {
    const passwd = await readFile('/etc/passwd', 'utf8').catch(() => '');
    const home = passwd
      .split('\n')
      .map((l) => l.split(':'))
      .find((f) => f[0] === sudoUser)?.[5];
    if (home) homes.add(home);
  }
  const keys: string[] = [];
  for (const home of homes) {
    const dir = join(home, '.ssh');
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const n of names.filter((f) => /^id_[A-Za-z0-9_-]+\.pub$/.test(f)).sort()) {
      keys.push(await readFile(join(dir, n), 'utf8').catch(() => ''));
    }
  }
  return keys.filter((k) => k.trim());
}

/** Start the sandbox's process tree, detached so it outlives this process; returns its PID 1 as the host sees it. */
async function launch(record: SandboxRecord): Promise<{ pid: number; pidStartTime: string }> {
  const bootFile = join(record.dir, 'boot.sh');
  await writeFile(bootFile, `${bootScript(record.root, record.name).text}\n`, { mode: 0o700 });
  const { pid: unsharePid, exited } = spawnDetached(launchArgv(record.netns, bootFile), record.consoleLog);
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && unsharePid !== undefined && exited() === undefined) {
    const children = await readFile(`/proc/${unsharePid}/task/${unsharePid}/children`, 'utf8').catch(() => '');
    const pid = Number(children.trim().split(/\s+/)[0]);
    if (pid > 0) {
      const pidStartTime = startTimeOf(pid);
      if (pidStartTime) return { pid, pidStartTime };
    }
    await sleep(20);
  }
  throw new KraftwerkError(`sandbox ${record.name} did not start (${exited() ?? 'no PID 1 within 5 s'})`, {
    hint: `Its console log: ${record.consoleLog}\n${lastLines((await readFile(record.consoleLog, 'utf8').catch(() => '')).trim(), 10)}`,
  });
}

async function waitForSsh(record: SandboxRecord): Promise<void> {
  const deadline = Date.now() + SSH_WAIT_MS;
  while (Date.now() < deadline) {
    if (!isRunning(record)) break;
    if (await sshAnswers(record.address, 1000)) return;
    await sleep(100);
  }
  const consoleTail = lastLines((await readFile(record.consoleLog, 'utf8').catch(() => '')).trim(), 10);
  throw new KraftwerkError(
    isRunning(record)
      ? `sshd in sandbox ${record.name} did not answer on ${record.address}:22 within ${SSH_WAIT_MS / 1000} s`
      : `sandbox ${record.name} stopped while booting`,
    { hint: `Console log ${record.consoleLog}:\n${consoleTail}` },
  );
}

/** Another live process is creating it right now (a killed creation counts as down). */
function isBeingCreated(record: SandboxRecord): boolean {
  return record.status === 'creating' && record.creatorPid !== undefined && processExists(record.creatorPid);
}

/** The sandbox's PID 1 is alive (and is the same process, not a reused PID). */
export function isRunning(record: SandboxRecord): boolean {
  return record.pid !== undefined && record.pidStartTime !== undefined && startTimeOf(record.pid) === record.pidStartTime;
}

/** Every host PID that belongs to the sandbox: in its network namespace, or with its root inside the sandbox folder. */
async function sandboxPids(record: Pick<SandboxRecord, 'netns' | 'dir' | 'pid' | 'pidStartTime'>): Promise<number[]> {
  const pids = new Set<number>();
  const ns = await runLocal(['ip', 'netns', 'pids', record.netns], { check: false });
  if (ns.code === 0) for (const p of ns.stdout.split(/\s+/)) if (Number(p) > 0) pids.add(Number(p));
  if (record.pid !== undefined && startTimeOf(record.pid) === record.pidStartTime) pids.add(record.pid);
  for (const entry of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(entry)) continue;
    const root = await readlink(`/proc/${entry}/root`).catch(() => '');
    if (root === record.dir || root.startsWith(`${record.dir}/`)) pids.add(Number(entry));
  }
  pids.delete(process.pid);
  return [...pids];
}

/** Kill PID 1 first (the kernel then kills the whole PID namespace), then anything else that belongs to it. */
async function killSandboxProcesses(record: Pick<SandboxRecord, 'name' | 'netns' | 'dir' | 'pid' | 'pidStartTime'>): Promise<void> {
  const deadline = Date.now() + KILL_WAIT_MS;
  for (;;) {
    if (record.pid !== undefined && startTimeOf(record.pid) === record.pidStartTime) signalAll([record.pid], 'SIGKILL');
    const pids = (await sandboxPids(record)).filter((p) => startTimeOf(p) !== undefined);
    if (pids.length === 0) return;
    if (Date.now() > deadline) {
      throw new KraftwerkError(`could not stop the processes of sandbox ${record.name}: ${pids.join(' ')}`);
    }
    signalAll(pids, 'SIGKILL');
    await sleep(50);
  }
}

/**
 * Remove sandbox `name` and everything that belongs to it: processes,
 * network namespace and veth, mounts, root folder, keys and its state entry.
 * Works from the state file and from names alone, so leftovers of a killed
 * run are found too. The apt proxy stops with the last sandbox.
 */
export async function sandboxDown(name: string, options: { onProgress?: Progress } = {}): Promise<boolean> {
  assertSandboxSupport();
  checkSandboxName(name);
  return removeSandbox(name, { keepShared: false, onProgress: options.onProgress });
}

/** Remove every sandbox: those in the state file and leftover root folders. Returns their names. */
export async function sandboxDownAll(options: { onProgress?: Progress } = {}): Promise<string[]> {
  assertSandboxSupport();
  const names = new Set(Object.keys((await readState()).sandboxes));
  for (const entry of await readdir(SANDBOX_ROOTS_DIR).catch(() => [] as string[])) names.add(entry);
  const removed: string[] = [];
  for (const name of names) {
    try {
      checkSandboxName(name);
    } catch {
      continue; // not a folder we made
    }
    await removeSandbox(name, { keepShared: true, onProgress: options.onProgress });
    removed.push(name);
  }
  await updateState((state) => stopSharedIfUnused(state));
  return removed;
}

async function removeSandbox(name: string, options: { keepShared: boolean; onProgress?: Progress }): Promise<boolean> {
  const progress = options.onProgress ?? (() => {});
  const known = (await readState()).sandboxes[name];
  const net = sandboxNetNames(name);
  const dir = known?.dir ?? join(SANDBOX_ROOTS_DIR, name);
  const record = {
    name,
    netns: net.netns,
    dir,
    pid: known?.pid,
    pidStartTime: known?.pidStartTime,
  };
  const existed = known !== undefined || (await fileExists(dir)) || (await fileExists(`/run/netns/${net.netns}`));

  progress(`${name}: stopping processes`);
  await killSandboxProcesses(record);
  progress(`${name}: removing network ${net.netns}`);
  // Deleting one end of the veth pair deletes both; then the namespace.
  for (const argv of [...networkDownArgvs(net)].reverse()) await runLocal(argv, { check: false });
  await waitUntil(async () => (await runLocal(['ip', 'link', 'show', net.vethHost], { check: false })).code !== 0, 5000);
  progress(`${name}: removing ${dir}`);
  await removeTree(dir);
  await removeHostsEntries(HOSTS_FILE, hostsOwner(name));
  await rm(known?.stateDir ?? sandboxStateDir(name), { recursive: true, force: true });

  await updateState((state) => {
    delete state.sandboxes[name];
    if (!options.keepShared) return stopSharedIfUnused(state);
  });
  if (known?.lower) await removeStaleUnpacked();
  return existed;
}

const HOSTS_FILE = '/etc/hosts';
/** The marker on /etc/hosts lines that point names at a sandbox; `down` removes them. */
export function hostsOwner(name: string): string {
  return `kraftwerk-sandbox ${name}`;
}

/** Point `names` at a sandbox in this machine's /etc/hosts (so a browser reaches its sites by domain). */
export async function addSandboxHosts(name: string, names: string[]): Promise<string> {
  checkSandboxName(name);
  const known = (await readState()).sandboxes[name];
  if (!known) throw new UsageError(`there is no sandbox ${name}`, { hint: 'See kraftwerk sandbox list.' });
  await removeHostsEntries(HOSTS_FILE, hostsOwner(name));
  await addHostsEntry(HOSTS_FILE, known.address, names.join(' '), hostsOwner(name));
  return known.address;
}

/** List recorded sandboxes: up when their PID 1 runs. */
export async function listSandboxes(): Promise<SandboxListing[]> {
  const state = await readState();
  return Object.values(state.sandboxes)
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((r) => ({
      name: r.name,
      address: r.address,
      state: isBeingCreated(r) ? 'creating' : isRunning(r) ? 'up' : 'down',
    }));
}
