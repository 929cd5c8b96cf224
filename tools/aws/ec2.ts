/**
 * The EC2 calls of create-node and destroy-node. This is the only file that
 * imports the AWS SDK, and it is itself imported only inside the command
 * actions (see index.ts), so other commands never load the SDK.
 */
import {
  AuthorizeSecurityGroupIngressCommand,
  CreateSecurityGroupCommand,
  DescribeImagesCommand,
  DescribeInstancesCommand,
  DescribeKeyPairsCommand,
  DescribeSecurityGroupsCommand,
  EC2Client,
  ImportKeyPairCommand,
  RunInstancesCommand,
  TerminateInstancesCommand,
  type Instance,
} from '@aws-sdk/client-ec2';
import { KraftwerkError } from '../../core/index.ts';
import { mapEc2Error, mapSetupError } from './errors.ts';

/** Owner id of the official Debian cloud images (https://wiki.debian.org/Cloud/AmazonEC2Image). */
export const DEBIAN_OWNER = '136693071363';
/** Tag that marks an instance as the Kraftwerk node of that name. */
export const NODE_TAG = 'kraftwerk:node';
/** Security group create-node makes (once per VPC) when none is given. */
export const DEFAULT_SECURITY_GROUP = 'kraftwerk-web';
export const OPEN_PORTS = [22, 80, 443] as const;

export interface Ec2 {
  client: EC2Client;
  region: string;
  endpoint?: string;
}

/**
 * A client for `region` (or the region of the AWS config chain) with credentials
 * from the SDK's default chain. Resolves both up front so that a missing one is
 * reported before any task starts.
 */
export async function openEc2(options: { region?: string; endpoint?: string }): Promise<Ec2> {
  // The SDK warns on every Node 20 run that its 2027 releases will need Node 22; Kraftwerk
  // supports Node 20 and pins what it installs, so the warning only adds noise to the output.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const client = new EC2Client({
    region: options.region,
    endpoint: options.endpoint,
    maxAttempts: 3,
  });
  try {
    // Credentials before region: "no credentials" is the more basic problem.
    await client.config.credentials();
    const region = await client.config.region();
    return { client, region, endpoint: options.endpoint };
  } catch (e) {
    client.destroy();
    throw mapSetupError(e) ?? e;
  }
}

async function call<T>(ec2: Ec2, operation: string, run: () => Promise<T>, context: { instanceType?: string; imageId?: string } = {}): Promise<T> {
  try {
    return await run();
  } catch (e) {
    throw mapEc2Error(e, operation, { region: ec2.region, endpoint: ec2.endpoint, ...context });
  }
}

export type Architecture = 'x86_64' | 'arm64';

/** Graviton sizes (t4g, m7g, c6gn, a1, …) need arm64 images. */
export function architectureOf(instanceType: string): Architecture {
  return /^([a-z]+\d+g[a-z]*|a1)\./.test(instanceType) ? 'arm64' : 'x86_64';
}

export interface ImageInfo {
  imageId: string;
  name: string;
  creationDate: string;
}

/** The newest official Debian 12 image of the region for `architecture`. */
export async function findNewestDebianImage(ec2: Ec2, architecture: Architecture): Promise<ImageInfo> {
  const debArch = architecture === 'arm64' ? 'arm64' : 'amd64';
  const out = await call(ec2, 'DescribeImages', () =>
    ec2.client.send(
      new DescribeImagesCommand({
        Owners: [DEBIAN_OWNER],
        Filters: [
          { Name: 'name', Values: [`debian-12-${debArch}-*`] },
          { Name: 'architecture', Values: [architecture] },
          { Name: 'state', Values: ['available'] },
        ],
      }),
    ),
  );
  const images = (out.Images ?? [])
    .filter((i) => i.ImageId && i.CreationDate)
    .sort((a, b) => Date.parse(b.CreationDate!) - Date.parse(a.CreationDate!));
  const newest = images[0];
  if (!newest) {
    throw new KraftwerkError(`no official Debian 12 ${debArch} image found in ${ec2.region}`, {
      hint: 'Pass an AMI id of the region with --image ami-…',
    });
  }
  return { imageId: newest.ImageId!, name: newest.Name ?? newest.ImageId!, creationDate: newest.CreationDate! };
}

/** Checks that a given AMI id exists in the region (a clear error instead of RunInstances' generic one). */
export async function describeImage(ec2: Ec2, imageId: string): Promise<ImageInfo> {
  const out = await call(ec2, 'DescribeImages', () => ec2.client.send(new DescribeImagesCommand({ ImageIds: [imageId] })), { imageId });
  const image = out.Images?.[0];
  if (!image) throw mapEc2Error({ name: 'InvalidAMIID.NotFound', message: 'not found' }, 'DescribeImages', { region: ec2.region, imageId });
  return { imageId, name: image.Name ?? imageId, creationDate: image.CreationDate ?? '' };
}

export interface NodeInstance {
  instanceId: string;
  state: string;
  publicIp?: string;
  privateIp?: string;
  instanceType?: string;
  stateReason?: string;
}

function toNodeInstance(i: Instance): NodeInstance {
  return {
    instanceId: i.InstanceId!,
    state: i.State?.Name ?? 'unknown',
    publicIp: i.PublicIpAddress,
    privateIp: i.PrivateIpAddress,
    instanceType: i.InstanceType,
    stateReason: i.StateReason?.Message,
  };
}

/** Instances tagged as node `name` that are not terminated. */
export async function findNodeInstances(ec2: Ec2, name: string): Promise<NodeInstance[]> {
  const out = await call(ec2, 'DescribeInstances', () =>
    ec2.client.send(
      new DescribeInstancesCommand({
        Filters: [
          { Name: `tag:${NODE_TAG}`, Values: [name] },
          { Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped'] },
        ],
      }),
    ),
  );
  return (out.Reservations ?? []).flatMap((r) => r.Instances ?? []).filter((i) => i.InstanceId).map(toNodeInstance);
}

export async function describeInstance(ec2: Ec2, instanceId: string): Promise<NodeInstance | undefined> {
  const out = await call(ec2, 'DescribeInstances', () => ec2.client.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] })));
  const instance = (out.Reservations ?? []).flatMap((r) => r.Instances ?? []).find((i) => i.InstanceId === instanceId);
  return instance ? toNodeInstance(instance) : undefined;
}

/** Same key material: type and base64 blob (the comment does not count). */
export function samePublicKey(a: string, b: string): boolean {
  const norm = (k: string) => k.trim().split(/\s+/).slice(0, 2).join(' ');
  return norm(a) === norm(b);
}

/**
 * Imports `publicKey` as key pair `keyName`, or reuses the pair of that name
 * when it holds the same key. A pair of that name with another key is an error:
 * replacing it would lock out whoever uses it.
 */
export async function ensureKeyPair(ec2: Ec2, keyName: string, publicKey: string): Promise<{ keyName: string; imported: boolean }> {
  const existing = await call(ec2, 'DescribeKeyPairs', () =>
    ec2.client.send(new DescribeKeyPairsCommand({ Filters: [{ Name: 'key-name', Values: [keyName] }], IncludePublicKey: true })),
  );
  const pair = existing.KeyPairs?.find((k) => k.KeyName === keyName);
  if (pair) {
    // Clouds that do not return the key material get the benefit of the doubt.
    if (pair.PublicKey && !samePublicKey(pair.PublicKey, publicKey)) {
      throw new KraftwerkError(`EC2 key pair ${keyName} in ${ec2.region} holds a different public key`, {
        hint: `Pass the matching key with --key, or delete the pair (aws ec2 delete-key-pair --key-name ${keyName}) if nobody needs it.`,
      });
    }
    return { keyName, imported: false };
  }
  await call(ec2, 'ImportKeyPair', () =>
    ec2.client.send(
      new ImportKeyPairCommand({
        KeyName: keyName,
        PublicKeyMaterial: new TextEncoder().encode(publicKey.trim()),
        TagSpecifications: [{ ResourceType: 'key-pair', Tags: [{ Key: 'kraftwerk:managed', Value: 'true' }] }],
      }),
    ),
  );
  return { keyName, imported: true };
}

/**
 * The security group to launch into: `given` (an sg- id or a group name), or
 * kraftwerk-web (ports 22, 80 and 443 open), created when it does not exist yet.
 */
export async function ensureSecurityGroup(ec2: Ec2, given?: string): Promise<{ groupId: string; name: string; created: boolean }> {
  if (given?.startsWith('sg-')) {
    await call(ec2, 'DescribeSecurityGroups', () => ec2.client.send(new DescribeSecurityGroupsCommand({ GroupIds: [given] })));
    return { groupId: given, name: given, created: false };
  }
  const name = given ?? DEFAULT_SECURITY_GROUP;
  const found = await call(ec2, 'DescribeSecurityGroups', () =>
    ec2.client.send(new DescribeSecurityGroupsCommand({ Filters: [{ Name: 'group-name', Values: [name] }] })),
  );
  const group = found.SecurityGroups?.find((g) => g.GroupName === name && g.GroupId);
  if (group) return { groupId: group.GroupId!, name, created: false };
  if (given) {
    throw new KraftwerkError(`no security group named ${given} in ${ec2.region}`, {
      hint: 'Pass an existing group id (sg-…) or name with --security-group, or leave it out to use kraftwerk-web.',
    });
  }
  const created = await call(ec2, 'CreateSecurityGroup', () =>
    ec2.client.send(
      new CreateSecurityGroupCommand({
        GroupName: name,
        Description: 'Kraftwerk web nodes: SSH, HTTP and HTTPS',
        TagSpecifications: [{ ResourceType: 'security-group', Tags: [{ Key: 'kraftwerk:managed', Value: 'true' }] }],
      }),
    ),
  );
  const groupId = created.GroupId!;
  await call(ec2, 'AuthorizeSecurityGroupIngress', () =>
    ec2.client.send(
      new AuthorizeSecurityGroupIngressCommand({
        GroupId: groupId,
        IpPermissions: OPEN_PORTS.map((port) => ({
          IpProtocol: 'tcp',
          FromPort: port,
          ToPort: port,
          IpRanges: [{ CidrIp: '0.0.0.0/0' }],
          Ipv6Ranges: [{ CidrIpv6: '::/0' }],
        })),
      }),
    ),
  );
  return { groupId, name, created: true };
}

export interface LaunchSpec {
  name: string;
  imageId: string;
  instanceType: string;
  keyName: string;
  securityGroupId: string;
  userData: string;
  dryRun?: boolean;
}

/** RunInstances for one instance, tagged Name=<name> and kraftwerk:node=<name> at launch. */
export async function launchInstance(ec2: Ec2, spec: LaunchSpec): Promise<NodeInstance> {
  const tags = [
    { Key: 'Name', Value: spec.name },
    { Key: NODE_TAG, Value: spec.name },
  ];
  const out = await call(
    ec2,
    'RunInstances',
    () =>
      ec2.client.send(
        new RunInstancesCommand({
          ImageId: spec.imageId,
          InstanceType: spec.instanceType as never,
          KeyName: spec.keyName,
          SecurityGroupIds: [spec.securityGroupId],
          MinCount: 1,
          MaxCount: 1,
          UserData: Buffer.from(spec.userData, 'utf8').toString('base64'),
          TagSpecifications: [
            { ResourceType: 'instance', Tags: tags },
            { ResourceType: 'volume', Tags: tags },
          ],
        }),
      ),
    { instanceType: spec.instanceType, imageId: spec.imageId },
  );
  const instance = out.Instances?.[0];
  if (!instance?.InstanceId) throw new KraftwerkError(`EC2 RunInstances in ${ec2.region} answered without an instance`);
  return toNodeInstance(instance);
}

export async function terminateInstance(ec2: Ec2, instanceId: string): Promise<string> {
  const out = await call(ec2, 'TerminateInstances', () => ec2.client.send(new TerminateInstancesCommand({ InstanceIds: [instanceId] })));
  return out.TerminatingInstances?.[0]?.CurrentState?.Name ?? 'shutting-down';
}
