/**
 * Root file systems of sandboxes: the debootstrap root and snapshots, cached
 * as tarballs, each unpacked once and used as the read-only lower layer of
 * every sandbox's overlay root.
 */
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { UsageError } from '../../core/index.ts';
import {
  ROOTFS_CACHE_DIR,
  ROOTFS_SPEC,
  SNAPSHOT_DIR,
  debootstrapArgv,
  overlayMountArgv,
  rootfsCleanupScript,
  rootfsKey,
  tarCreateArgv,
  tarExtractArgv,
  type RootfsSpec,
} from './commands.ts';
import { fileExists, removeTree } from './host.ts';
import { runLocal } from './run.ts';
import { readState, withLock, type SandboxRecord } from './state.ts';

export type Progress = (line: string) => void;

const DEBOOTSTRAP_TIMEOUT_MS = 15 * 60_000;
/** Snapshots after setup-node hold compilers and databases: give tar time on a slow disk. */
export const TAR_TIMEOUT_MS = 10 * 60_000;


export function rootfsTarball(spec: RootfsSpec = ROOTFS_SPEC): string {
  return join(ROOTFS_CACHE_DIR, `${rootfsKey(spec)}.tar`);
}

/**
 * The cached root tarball, built with debootstrap the first time (about a
 * minute or two). Concurrent callers wait for one build.
 */
export async function ensureRootfs(onProgress: Progress = () => {}, spec: RootfsSpec = ROOTFS_SPEC): Promise<string> {
  const tarball = rootfsTarball(spec);
  if (await fileExists(tarball)) return tarball;
  await mkdir(ROOTFS_CACHE_DIR, { recursive: true });
  if (await fileExists(`${tarball}.lock`)) onProgress('another kraftwerk process is building the root file system; waiting for it');
  return withLock(`${tarball}.lock`, DEBOOTSTRAP_TIMEOUT_MS + TAR_TIMEOUT_MS, async () => {
    if (await fileExists(tarball)) return tarball;
    const build = `${tarball}.build`;
    const tmp = `${tarball}.${process.pid}.tmp`;
    await removeTree(build);
    onProgress(`building the Debian ${spec.suite} root file system with debootstrap (once; cached in ${ROOTFS_CACHE_DIR})`);
    try {
      await runLocal(debootstrapArgv(spec, build), { onLine: onProgress, timeoutMs: DEBOOTSTRAP_TIMEOUT_MS });
      await runLocal(['sh', '-c', rootfsCleanupScript(build).text]);
      onProgress('packing the root file system');
      await runLocal(tarCreateArgv(build, tmp), { timeoutMs: TAR_TIMEOUT_MS });
      await rename(tmp, tarball);
    } finally {
      await rm(tmp, { force: true });
      await removeTree(build);
    }
    return tarball;
  });
}

const SNAPSHOT_KEY = /^[A-Za-z0-9._-]{1,128}$/;

export function snapshotPath(key: string): string {
  if (!SNAPSHOT_KEY.test(key) || key.startsWith('.')) {
    throw new UsageError(`invalid snapshot key ${JSON.stringify(key)}`, {
      hint: 'Use letters, digits, dots, dashes and underscores (e.g. a hash of the setup steps).',
    });
  }
  return join(SNAPSHOT_DIR, `${key}.tar`);
}

export function hasSnapshot(key: string): Promise<boolean> {
  return fileExists(snapshotPath(key));
}

/** Delete snapshot `key` (its tarball; its unpacked copy once no sandbox stands on it). */
export async function removeSnapshot(key: string): Promise<void> {
  await rm(snapshotPath(key), { force: true });
  await removeStaleUnpacked();
}

/**
 * Unpacked copies whose tarball is gone or was saved again, and on which no
 * recorded sandbox stands any more.
 */
export async function removeStaleUnpacked(): Promise<void> {
  const inUse = new Set(Object.values((await readState()).sandboxes).map((s) => s.lower));
  for (const cacheDir of [SNAPSHOT_DIR, ROOTFS_CACHE_DIR]) {
    for (const entry of await readdir(cacheDir).catch(() => [] as string[])) {
      const m = /^(.+)\.\d+\.root$/.exec(entry);
      if (!m) continue;
      const dir = join(cacheDir, entry);
      const tarball = join(cacheDir, `${m[1]}.tar`);
      const current = await unpackedDir(tarball).catch(() => undefined);
      if (dir !== current && !inUse.has(dir)) await removeTree(dir);
    }
  }
}

/**
 * The sandbox's root: an overlay on the tarball unpacked once (instant), or,
 * where overlayfs is unavailable (some containers, nested overlays), the
 * tarball unpacked into the sandbox's own folder. Returns the lower folder
 * when an overlay is used.
 */
export async function makeRoot(record: SandboxRecord, tarball: string, progress: Progress): Promise<string | undefined> {
  await mkdir(record.root, { recursive: true, mode: 0o755 });
  const lower = await ensureUnpacked(tarball, progress).catch(() => undefined);
  if (lower) {
    const upper = join(record.dir, 'upper');
    const work = join(record.dir, 'work');
    await mkdir(upper, { mode: 0o755 });
    await mkdir(work, { mode: 0o700 });
    const mounted = await runLocal(overlayMountArgv(lower, upper, work, record.root), { check: false });
    if (mounted.code === 0) {
      progress(`root: overlay on ${lower}`);
      return lower;
    }
    progress(`overlayfs is not usable here (${mounted.stderr.trim()}); unpacking instead`);
    await rm(upper, { recursive: true, force: true });
    await rm(work, { recursive: true, force: true });
  }
  progress(`unpacking ${tarball} into ${record.root}`);
  await runLocal(tarExtractArgv(tarball, record.root), { timeoutMs: TAR_TIMEOUT_MS });
  return undefined;
}

/** Folder holding the unpacked `tarball`, named after its modification time so a re-saved snapshot gets a new one. */
async function unpackedDir(tarball: string): Promise<string> {
  const { mtimeMs } = await stat(tarball);
  return `${tarball.replace(/\.tar$/, '')}.${Math.floor(mtimeMs)}.root`;
}

/** Unpack a cached tarball once, for use as a read-only overlay lower layer. */
async function ensureUnpacked(tarball: string, progress: Progress): Promise<string> {
  const dir = await unpackedDir(tarball);
  if (await fileExists(dir)) return dir;
  return withLock(`${dir}.lock`, TAR_TIMEOUT_MS, async () => {
    if (await fileExists(dir)) return dir;
    progress(`unpacking ${tarball} (once; sandboxes then start as overlays on it)`);
    const tmp = `${dir}.${process.pid}.tmp`;
    await removeTree(tmp);
    try {
      await mkdir(tmp, { mode: 0o755 });
      await runLocal(tarExtractArgv(tarball, tmp), { timeoutMs: TAR_TIMEOUT_MS });
      await rename(tmp, dir);
    } finally {
      await removeTree(tmp);
    }
    return dir;
  });
}
