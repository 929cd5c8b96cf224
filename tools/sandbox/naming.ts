/**
 * Names and addresses of sandboxes: everything here is derived from the
 * sandbox name or from the state file, so it is pure and testable.
 */
import { createHash } from 'node:crypto';
import { UsageError } from '../../core/index.ts';

export const DEFAULT_SANDBOX_NAME = 'sandbox';

/**
 * A sandbox name becomes a hostname, a network namespace name and a folder
 * name, so it is held to the strictest of the three: a DNS label, short.
 */
const SANDBOX_NAME = /^[a-z](?:[a-z0-9-]{0,30}[a-z0-9])?$/;

export function checkSandboxName(name: string): void {
  if (!SANDBOX_NAME.test(name)) {
    throw new UsageError(`invalid sandbox name ${JSON.stringify(name)}`, {
      hint: 'Use 1 to 32 lower-case letters, digits and dashes, starting with a letter (it becomes the hostname).',
    });
  }
}

/** Kernel names of one sandbox's network pieces. Interface names are at most 15 characters. */
export interface SandboxNetNames {
  netns: string;
  vethHost: string;
  vethSandbox: string;
}

export function sandboxNetNames(name: string): SandboxNetNames {
  const h = createHash('sha256').update(name).digest('hex').slice(0, 6);
  return { netns: `kw-${name}`, vethHost: `kw${h}h`, vethSandbox: `kw${h}s` };
}

/**
 * Sandboxes live in 10.213.0.0/16: a /30 each from the first 255 /24s, and
 * 10.213.255.0/24 kept for the host-side services every sandbox reaches (the
 * apt proxy), so those never collide with a sandbox's link.
 */
const NET_FIRST_OCTETS = [10, 213] as const;
const SUBNETS_PER_24 = 64;
export const MAX_SANDBOX_SUBNETS = 255 * SUBNETS_PER_24;

/** Address of the apt proxy, put on the host's loopback while any sandbox lives. */
export const PROXY_ADDRESS = '10.213.255.1';
export const PROXY_PORT = 3142;

export interface SandboxSubnet {
  index: number;
  /** The sandbox's own address. */
  address: string;
  /** The host end of the veth pair; the sandbox's default route. */
  hostAddress: string;
  prefix: 30;
}

export function subnetForIndex(index: number): SandboxSubnet {
  if (!Number.isInteger(index) || index < 0 || index >= MAX_SANDBOX_SUBNETS) {
    throw new RangeError(`sandbox subnet index out of range: ${index}`);
  }
  const third = Math.floor(index / SUBNETS_PER_24);
  const base = (index % SUBNETS_PER_24) * 4;
  const ip = (last: number) => `${NET_FIRST_OCTETS.join('.')}.${third}.${base + last}`;
  return { index, hostAddress: ip(1), address: ip(2), prefix: 30 };
}

/** The /30 index that contains `address`, or undefined when it is outside the sandbox range. */
export function subnetIndexOf(address: string): number | undefined {
  const parts = address.split('.').map(Number);
  if (parts.length !== 4 || parts[0] !== NET_FIRST_OCTETS[0] || parts[1] !== NET_FIRST_OCTETS[1]) return undefined;
  const [, , third, fourth] = parts as [number, number, number, number];
  if (third >= 255) return undefined;
  return third * SUBNETS_PER_24 + Math.floor(fourth / 4);
}

/**
 * The lowest free /30: not used by a recorded sandbox and not overlapping any
 * address already configured on the host (another tool, or a leftover).
 */
export function allocateSubnet(usedIndices: Iterable<number>, hostAddresses: Iterable<string>): SandboxSubnet {
  const taken = new Set(usedIndices);
  for (const a of hostAddresses) {
    const i = subnetIndexOf(a);
    if (i !== undefined) taken.add(i);
  }
  for (let i = 0; i < MAX_SANDBOX_SUBNETS; i++) {
    if (!taken.has(i)) return subnetForIndex(i);
  }
  throw new UsageError('no free sandbox address left in 10.213.0.0/16', {
    hint: 'Remove sandboxes you no longer need with: kraftwerk sandbox down --all',
  });
}
