import { readFile, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { KraftwerkError, type Project, UsageError } from '../../core/index.ts';
import {
  architectureOf,
  describeImage,
  describeInstance,
  ensureKeyPair,
  ensureSecurityGroup,
  findNewestDebianImage,
  findNodeInstances,
  launchInstance,
  openEc2,
  type Ec2,
  type ImageInfo,
  type NodeInstance,
} from './ec2.ts';
import { addHostsEntry, hostsLine } from '../hosts-file.ts';
import { addNode, nodeSnippet, recordedNode, type RecordedNode } from './node-config.ts';
import { readPublicKey, tildePath } from './public-key.ts';
import { checkNodeName, DEFAULT_WAITS, keyPairName, type AwsDeps, type Waits } from './settings.ts';
import { DEBIAN_CLOUD_USER, renderUserData } from './user-data.ts';
import { waitForSsh } from './wait-ssh.ts';

export interface CreateNodeOptions {
  name: string;
  /** EC2 instance type. */
  size: string;
  /** "debian-12" (newest official image of the region) or an AMI id. */
  image: string;
  region?: string;
  /** EC2-compatible endpoint URL (tests, other clouds). */
  endpoint?: string;
  /** Public key file; default ~/.ssh/id_ed25519.pub, then ~/.ssh/id_rsa.pub. */
  key?: string;
  /** Security group id (sg-…) or name; default kraftwerk-web, created when missing. */
  securityGroup?: string;
  /** Port sshd listens on in the image. */
  sshPort: number;
  /** Record the node in kraftwerk.yaml without asking. */
  writeConfig: boolean;
  /** Add the node to the hosts file without asking. */
  hosts: boolean;
  /** Do not ask: record the node in kraftwerk.yaml (the hosts file still needs --hosts). */
  yes: boolean;
}

export interface CreatedNode {
  name: string;
  instanceId: string;
  region: string;
  address: string;
  node: RecordedNode;
  /** Where the node was recorded, if it was. */
  configFile?: string;
  /** True when the hosts file got the node. */
  hostsAdded: boolean;
}

interface LaunchState {
  image?: ImageInfo;
  keyName?: string;
  groupId?: string;
  instance?: NodeInstance;
  address?: string;
  banner?: string;
}

/** `kraftwerk create-node`: launch an EC2 instance running Debian 12 and record it as a node. */
export async function createNode(options: CreateNodeOptions, deps: AwsDeps): Promise<CreatedNode | undefined> {
  const { kit } = deps;
  const waits: Waits = { ...DEFAULT_WAITS, ...deps.waits };
  const home = deps.home ?? homedir();
  const dryRun = kit.options().dryRun;
  checkNodeName(options.name);
  if (options.image !== 'debian-12' && !/^ami-[0-9a-f]{8,17}$/.test(options.image)) {
    throw new UsageError(`--image ${options.image}: expected debian-12 or an AMI id (ami-…)`);
  }
  if (!/^[a-z][a-z0-9-]*\.[a-z0-9]+$/.test(options.size)) {
    throw new UsageError(`--size ${options.size}: expected an EC2 instance type such as t3.micro`);
  }
  // Credentials first: without them nothing else matters, and the user should hear that first.
  const ec2 = await openEc2({ region: options.region, endpoint: options.endpoint });
  const state: LaunchState = {};
  try {
    const key = await readPublicKey(options.key, home);
    // Fail before launching anything when the node cannot be recorded where the user asked.
    const config = await projectConfig(deps, options.writeConfig);
    if (config?.text !== undefined && recordedNode(config.text, options.name, config.file) !== undefined) {
      throw new UsageError(`node ${options.name} is already in ${config.file}`, {
        hint: `Choose another name, or remove nodes.${options.name} from the file first.`,
      });
    }
    await kit.runTasks<LaunchState>(
      [
        {
          title: 'check name',
          run: async (_ctx, task) => {
            const existing = await findNodeInstances(ec2, options.name);
            if (existing.length) {
              throw new KraftwerkError(
                `an instance is already tagged as node ${options.name} in ${ec2.region}: ${existing.map((i) => `${i.instanceId} (${i.state})`).join(', ')}`,
                { hint: `Choose another name, or remove it first with kraftwerk destroy-node ${options.name}` },
              );
            }
            task.title(`check name (${options.name} is free in ${ec2.region})`);
          },
        },
        {
          title: 'find image',
          run: async (ctx, task) => {
            ctx.image =
              options.image === 'debian-12'
                ? await findNewestDebianImage(ec2, architectureOf(options.size))
                : await describeImage(ec2, options.image);
            task.title(`find image (${ctx.image.imageId} ${ctx.image.name})`);
          },
        },
        {
          title: 'import key',
          skip: () => dryRun && `dry run: would import ${key.file} as ${keyPairName(options.name)}`,
          run: async (ctx, task) => {
            const pair = await ensureKeyPair(ec2, keyPairName(options.name), key.text);
            ctx.keyName = pair.keyName;
            task.title(`import key (${pair.keyName}${pair.imported ? '' : ', already there'})`);
          },
        },
        {
          title: 'security group',
          skip: () => dryRun && `dry run: would use ${options.securityGroup ?? 'kraftwerk-web (ports 22, 80, 443)'}`,
          run: async (ctx, task) => {
            const group = await ensureSecurityGroup(ec2, options.securityGroup);
            ctx.groupId = group.groupId;
            task.title(`security group (${group.name}${group.created ? ', created: 22, 80, 443 open' : ''})`);
          },
        },
        {
          title: 'launch',
          skip: () => dryRun && `dry run: would launch a ${options.size} named ${options.name}`,
          run: async (ctx, task) => {
            ctx.instance = await launchInstance(ec2, {
              name: options.name,
              imageId: ctx.image!.imageId,
              instanceType: options.size,
              keyName: ctx.keyName!,
              securityGroupId: ctx.groupId!,
              userData: renderUserData({ hostname: options.name, publicKey: key.text }),
            });
            task.title(`launch (${ctx.instance.instanceId}, ${options.size})`);
          },
        },
        {
          title: 'wait for running',
          skip: () => dryRun && 'dry run',
          run: async (ctx, task) => {
            const running = await waitForRunning(ec2, ctx.instance!.instanceId, options.name, waits, (line) => task.output(line));
            ctx.instance = running;
            ctx.address = running.publicIp ?? running.privateIp;
            if (!ctx.address) {
              throw new KraftwerkError(`instance ${running.instanceId} runs but has no IP address`, {
                hint: 'Check the subnet of the default VPC (it should assign public IPs), then kraftwerk destroy-node and try again.',
              });
            }
            if (!running.publicIp) kit.log.warn(`${running.instanceId} has no public IP; recording its private address ${ctx.address}`);
            task.title(`wait for running (${ctx.address})`);
          },
        },
        {
          title: 'wait for SSH',
          skip: () => dryRun && 'dry run',
          run: async (ctx, task) => {
            ctx.banner = await waitForSsh(ctx.address!, options.sshPort, {
              timeoutMs: waits.sshTimeoutMs,
              intervalMs: waits.sshIntervalMs,
              attemptMs: waits.sshAttemptMs,
              onAttempt: (n, why) => task.output(`attempt ${n}: ${why}`),
            }).catch((e: Error) => {
              throw new KraftwerkError(e.message, {
                hint: `${ctx.instance!.instanceId} runs but SSH does not answer: check that its security group lets port ${options.sshPort} in from here. kraftwerk destroy-node ${options.name} removes it.`,
              });
            });
            task.title(`wait for SSH (${ctx.banner})`);
          },
        },
      ],
      state,
    );
    if (dryRun) return undefined;

    const instance = state.instance!;
    const address = state.address!;
    const node: RecordedNode = { host: address, user: DEBIAN_CLOUD_USER, sudo: true };
    if (options.sshPort !== 22) node.port = options.sshPort;
    // ssh tries ~/.ssh/id_ed25519 and id_rsa by itself; any other key must be named.
    if (options.key) node.identity_file = tildePath(key.privateKeyFile, home);

    const recordedIn = await recordNode(options, deps, config, node, instance, ec2.region);
    const hostsAdded = await offerHostsLine(options, deps, address);
    kit.log.info(
      `${options.name} is up: ${node.user}@${address} (${instance.instanceId}, ${options.size}, ${ec2.region}). ` +
        `Next: kraftwerk setup-node ${options.name} --accept-new-host-key`,
    );
    return { name: options.name, instanceId: instance.instanceId, region: ec2.region, address, node, configFile: recordedIn, hostsAdded };
  } finally {
    ec2.client.destroy();
  }
}

interface ProjectConfig {
  file?: string;
  /** Why the config cannot be used, when it cannot. */
  problem?: string;
  /** Undefined when the config is not YAML (kraftwerk.config.ts) and cannot be edited. */
  text?: string;
}

async function projectConfig(deps: AwsDeps, required: boolean): Promise<ProjectConfig | undefined> {
  let project: Project;
  try {
    project = await deps.kit.loadProject();
  } catch (e) {
    if (required) throw e;
    return { problem: (e as Error).message };
  }
  const file = project.site.configFile;
  if (!/\.ya?ml$/.test(file)) {
    if (required) {
      throw new UsageError(`${file} is not a YAML file; create-node can only record nodes in kraftwerk.yaml`, {
        hint: 'Leave out --write-config and add the printed lines to your config yourself.',
      });
    }
    return { file, problem: `${file} is not YAML` };
  }
  return { file, text: await readFile(file, 'utf8') };
}

async function recordNode(
  options: CreateNodeOptions,
  deps: AwsDeps,
  config: ProjectConfig | undefined,
  node: RecordedNode,
  instance: NodeInstance,
  region: string,
): Promise<string | undefined> {
  const { kit } = deps;
  const file = config?.text !== undefined ? config.file : undefined;
  const write =
    file !== undefined && (options.writeConfig || options.yes || (await kit.confirm(`Add node ${options.name} to ${file}?`)));
  if (!write || file === undefined) {
    const why = config?.problem ? ` (not recorded: ${config.problem})` : '';
    kit.log.info(`Add the node to your kraftwerk.yaml${why}:\n${nodeSnippet(options.name, node)}`);
    return undefined;
  }
  // Read again: the file may have changed while the instance booted.
  const text = await readFile(file, 'utf8');
  const comment = `EC2 ${instance.instanceId} in ${region}, made by kraftwerk create-node`;
  await writeFile(file, addNode(text, options.name, node, { file, comment }));
  kit.log.info(`Recorded node ${options.name} in ${file}`);
  return file;
}

async function offerHostsLine(options: CreateNodeOptions, deps: AwsDeps, address: string): Promise<boolean> {
  const file = deps.hostsFile ?? '/etc/hosts';
  const line = hostsLine(address, options.name).replace('\t', ' ');
  // A system file changes only on --hosts or an answer typed by a person: --yes does not count.
  const wanted = options.hosts || (!options.yes && (await deps.kit.confirm(`Add "${line}" to ${file}?`)));
  if (!wanted) {
    deps.kit.log.info(`To reach the node by name, add to ${file}: ${line}`);
    return false;
  }
  try {
    const added = await addHostsEntry(file, address, options.name);
    deps.kit.log.info(added ? `Added "${line}" to ${file}` : `${file} already has "${line}"`);
    return added;
  } catch (e) {
    // The server exists by now: a hosts file we may not write is worth a warning, not a failure.
    const hint = e instanceof KraftwerkError && e.hint ? ` ${e.hint}` : '';
    deps.kit.log.warn(`${(e as Error).message}.${hint}`);
    return false;
  }
}

/** Polls DescribeInstances until the instance runs (bounded by waits.runningTimeoutMs). */
export async function waitForRunning(
  ec2: Ec2,
  instanceId: string,
  nodeName: string,
  waits: Waits,
  progress: (line: string) => void,
): Promise<NodeInstance> {
  const started = Date.now();
  for (;;) {
    // A new instance can be missing from DescribeInstances for a moment (eventual consistency).
    const instance = await describeInstance(ec2, instanceId);
    const seconds = Math.round((Date.now() - started) / 1000);
    if (instance?.state === 'running') return instance;
    if (instance && ['shutting-down', 'terminated', 'stopping', 'stopped'].includes(instance.state)) {
      throw new KraftwerkError(
        `instance ${instanceId} went ${instance.state} instead of running${instance.stateReason ? `: ${instance.stateReason}` : ''}`,
        { hint: 'Look at the instance in the EC2 console (often a quota or an image that does not fit the size), then try again.' },
      );
    }
    progress(`${instance?.state ?? 'not visible yet'} (${seconds}s)`);
    if (Date.now() - started + waits.pollMs > waits.runningTimeoutMs) {
      throw new KraftwerkError(`instance ${instanceId} did not start within ${Math.round(waits.runningTimeoutMs / 1000)}s`, {
        hint: `Check it in the EC2 console; kraftwerk destroy-node ${nodeName} removes it.`,
      });
    }
    await new Promise((r) => setTimeout(r, waits.pollMs));
  }
}
