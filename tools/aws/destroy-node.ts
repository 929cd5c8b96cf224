import { readFile, writeFile } from 'node:fs/promises';
import { KraftwerkError } from '../../core/index.ts';
import { findNodeInstances, NODE_TAG, openEc2, terminateInstance, type NodeInstance } from './ec2.ts';
import { recordedNode, recordedNodeComment, removeNode } from './node-config.ts';
import { checkNodeName, type AwsDeps } from './settings.ts';

export interface DestroyNodeOptions {
  name: string;
  region?: string;
  endpoint?: string;
  yes: boolean;
}

export interface DestroyedNode {
  instances: { instanceId: string; state: string }[];
  /** The config file the node was removed from, if it was recorded there. */
  configFile?: string;
}

/** `kraftwerk destroy-node`: terminate the instance(s) tagged as node `name`, after confirmation. */
export async function destroyNode(options: DestroyNodeOptions, deps: AwsDeps): Promise<DestroyedNode | undefined> {
  const { kit } = deps;
  checkNodeName(options.name);
  const ec2 = await openEc2({ region: options.region, endpoint: options.endpoint });
  try {
    const instances = await findNodeInstances(ec2, options.name);
    if (!instances.length) {
      throw new KraftwerkError(`no instance tagged ${NODE_TAG}=${options.name} in ${ec2.region}`, {
        hint: 'Check the name and --region (or AWS_REGION); instances terminated earlier are not listed.',
      });
    }
    const list = instances.map(describe).join(', ');
    if (kit.options().dryRun) {
      kit.log.info(`dry run: would terminate ${list} in ${ec2.region}`);
      return undefined;
    }
    if (!options.yes && !(await kit.confirm(`Terminate ${list} in ${ec2.region}? Its disk is deleted with it.`))) {
      throw new KraftwerkError(`destroy-node ${options.name}: not confirmed, nothing was terminated`, {
        hint: 'Pass --yes to terminate without a question (e.g. in CI).',
      });
    }
    const result: DestroyedNode = { instances: [] };
    await kit.runTasks<DestroyedNode>(
      [
        ...instances.map((instance) => ({
          title: `terminate ${instance.instanceId}`,
          run: async (ctx: DestroyedNode, task: { title(t: string): void }) => {
            const state = await terminateInstance(ec2, instance.instanceId);
            ctx.instances.push({ instanceId: instance.instanceId, state });
            task.title(`terminate ${instance.instanceId} (${state})`);
          },
        })),
        {
          title: 'remove from kraftwerk.yaml',
          run: async (ctx, task) => {
            const outcome = await forgetNode(options.name, instances, deps);
            if (outcome.file) ctx.configFile = outcome.file;
            else task.skip(outcome.reason);
          },
        },
      ],
      result,
    );
    kit.log.info(`Terminated node ${options.name} (${result.instances.map((i) => i.instanceId).join(', ')})`);
    return result;
  } finally {
    ec2.client.destroy();
  }
}

function describe(i: NodeInstance): string {
  return `${i.instanceId} (${[i.state, i.instanceType, i.publicIp].filter(Boolean).join(', ')})`;
}

/**
 * Removes the node from kraftwerk.yaml when the entry is the terminated instance:
 * its host is one of the instance's addresses, or create-node's comment names it.
 * An entry that points elsewhere (a name reused for another server) stays.
 */
async function forgetNode(name: string, instances: NodeInstance[], deps: AwsDeps): Promise<{ file?: string; reason: string }> {
  let file: string;
  try {
    file = (await deps.kit.loadProject()).site.configFile;
  } catch {
    return { reason: 'no kraftwerk.yaml here' };
  }
  if (!/\.ya?ml$/.test(file)) return { reason: `${file} is not YAML; remove nodes.${name} yourself` };
  const text = await readFile(file, 'utf8');
  const entry = recordedNode(text, name, file);
  if (entry === undefined) return { reason: `${name} is not recorded in ${file}` };
  const host = typeof entry === 'string' ? entry : (entry as { host?: string }).host;
  const addresses = instances.flatMap((i) => [i.publicIp, i.privateIp]).filter(Boolean);
  const comment = recordedNodeComment(text, name, file);
  const isThisInstance = (host && addresses.includes(host)) || instances.some((i) => comment.includes(i.instanceId));
  if (!isThisInstance) {
    deps.kit.log.warn(`nodes.${name} in ${file} points at ${host ?? 'another server'}, not at the terminated instance: left as it is`);
    return { reason: 'recorded entry is another server' };
  }
  await writeFile(file, removeNode(text, name, file));
  return { file, reason: '' };
}
