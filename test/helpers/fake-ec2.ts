/**
 * A small EC2 endpoint for tests: speaks the EC2 Query API (POST, form-encoded
 * Action=…&Version=2016-11-15) and answers in EC2's XML, so the real AWS SDK
 * talks to it over HTTP. It records every request (parsed parameters) so tests
 * check what was asked, and keeps just enough state (images, key pairs,
 * security groups, instances) for create-node and destroy-node.
 *
 * The address of a launched "instance" is configurable (`instanceAddress`), so
 * the end-to-end test points it at a sandbox server.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export const EC2_NAMESPACE = 'http://ec2.amazonaws.com/doc/2016-11-15/';

export interface RecordedRequest {
  action: string;
  /** Flat query parameters as sent, e.g. { 'TagSpecification.1.Tag.1.Key': 'Name' }. */
  params: Record<string, string>;
  /** The Authorization header (SigV4), to check that credentials were used. */
  authorization?: string;
}

export interface FakeImage {
  imageId: string;
  name: string;
  ownerId: string;
  creationDate: string;
  architecture?: string;
}

export interface FakeInstance {
  instanceId: string;
  imageId: string;
  instanceType: string;
  keyName?: string;
  state: 'pending' | 'running' | 'shutting-down' | 'terminated' | 'stopped';
  /** DescribeInstances calls left before a pending instance is running. */
  pendingPolls: number;
  publicIp: string;
  privateIp: string;
  tags: Record<string, string>;
  userData?: string;
  securityGroupIds: string[];
}

export interface FakeError {
  code: string;
  message: string;
  status?: number;
}

export interface FakeEc2Options {
  /** Address "instances" get once running (default 127.0.0.1). */
  instanceAddress?: string;
  /** DescribeInstances answers "pending" this many times before "running" (default 1). */
  pendingPolls?: number;
  images?: FakeImage[];
}

const STATE_CODES: Record<FakeInstance['state'], number> = {
  pending: 0,
  running: 16,
  'shutting-down': 32,
  terminated: 48,
  stopped: 80,
};

export const DEBIAN12_OLDER = 'ami-0d12a0000000000a1';
export const DEBIAN12_NEWEST = 'ami-0d12a0000000000b2';
export const DEBIAN12_ARM64 = 'ami-0d12a4000000000c3';

/** Images like Debian's real ones: two Debian 12 amd64 builds, an arm64 one, and look-alikes that must not win. */
export const DEFAULT_IMAGES: FakeImage[] = [
  { imageId: DEBIAN12_OLDER, name: 'debian-12-amd64-20240102-1614', ownerId: '136693071363', creationDate: '2024-01-02T16:14:00.000Z' },
  { imageId: DEBIAN12_NEWEST, name: 'debian-12-amd64-20250610-2140', ownerId: '136693071363', creationDate: '2025-06-10T21:40:00.000Z' },
  { imageId: DEBIAN12_ARM64, name: 'debian-12-arm64-20250610-2140', ownerId: '136693071363', creationDate: '2025-06-10T21:40:00.000Z', architecture: 'arm64' },
  { imageId: 'ami-0d13a0000000000d4', name: 'debian-13-amd64-20251001-0000', ownerId: '136693071363', creationDate: '2025-10-01T00:00:00.000Z' },
  { imageId: 'ami-0bad00000000000e5', name: 'debian-12-amd64-20991231-0000', ownerId: '999999999999', creationDate: '2099-12-31T00:00:00.000Z' },
];

export class FakeEc2 {
  readonly requests: RecordedRequest[] = [];
  readonly images: FakeImage[];
  readonly keyPairs = new Map<string, { keyPairId: string; publicKey: string }>();
  readonly securityGroups = new Map<string, { groupId: string; name: string; description: string; ports: number[] }>();
  readonly instances = new Map<string, FakeInstance>();
  instanceAddress: string;
  pendingPolls: number;
  private readonly failures = new Map<string, FakeError>();
  private server?: Server;
  private nextIp = 10;

  constructor(options: FakeEc2Options = {}) {
    this.instanceAddress = options.instanceAddress ?? '127.0.0.1';
    this.pendingPolls = options.pendingPolls ?? 1;
    this.images = options.images ?? DEFAULT_IMAGES.map((i) => ({ ...i }));
  }

  /** Starts listening on 127.0.0.1; returns the endpoint URL for the SDK. */
  async start(): Promise<string> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    return this.endpoint;
  }

  get endpoint(): string {
    const { port } = this.server!.address() as AddressInfo;
    return `http://127.0.0.1:${port}`;
  }

  async stop(): Promise<void> {
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server!.close(() => resolve()));
  }

  /** The next call of `action` fails with this EC2 error (once). */
  failNext(action: string, error: FakeError): void {
    this.failures.set(action, error);
  }

  /** Requests of one action, in order. */
  calls(action: string): RecordedRequest[] {
    return this.requests.filter((r) => r.action === action);
  }

  /** The actions called, in order. */
  get actions(): string[] {
    return this.requests.map((r) => r.action);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const params = Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString('utf8')));
    const action = params.Action ?? '';
    this.requests.push({ action, params, authorization: req.headers.authorization });
    const requestId = randomRequestId();
    const failure = this.failures.get(action);
    if (failure) {
      this.failures.delete(action);
      return send(res, failure.status ?? 400, errorXml(failure, requestId));
    }
    if (req.method !== 'POST' || params.Version !== '2016-11-15') {
      return send(res, 400, errorXml({ code: 'InvalidAction', message: `expected POST with Version=2016-11-15` }, requestId));
    }
    const handler = this.handlers[action];
    if (!handler) {
      return send(res, 400, errorXml({ code: 'InvalidAction', message: `The action ${action} is not valid for this web service.` }, requestId));
    }
    try {
      const body = handler(params);
      send(res, 200, `<?xml version="1.0" encoding="UTF-8"?>\n<${action}Response xmlns="${EC2_NAMESPACE}">\n<requestId>${requestId}</requestId>\n${body}\n</${action}Response>`);
    } catch (e) {
      const err = e as FakeError;
      send(res, err.status ?? 400, errorXml({ code: err.code ?? 'InternalError', message: err.message ?? String(e) }, requestId));
    }
  }

  private readonly handlers: Record<string, (p: Record<string, string>) => string> = {
    DescribeImages: (p) => {
      const owners = list(p, 'Owner');
      const ids = list(p, 'ImageId');
      const filters = filtersOf(p);
      const images = this.images.filter(
        (i) =>
          (!owners.length || owners.includes(i.ownerId)) &&
          (!ids.length || ids.includes(i.imageId)) &&
          matches(filters, { name: i.name, architecture: i.architecture ?? 'x86_64', state: 'available' }),
      );
      return tag('imagesSet', images.map((i) =>
        tag('item', [
          tag('imageId', i.imageId),
          tag('name', i.name),
          tag('imageOwnerId', i.ownerId),
          tag('creationDate', i.creationDate),
          tag('imageState', 'available'),
          tag('architecture', i.architecture ?? 'x86_64'),
        ].join('')),
      ).join(''));
    },
    DescribeKeyPairs: (p) => {
      const names = [...list(p, 'KeyName'), ...(filtersOf(p)['key-name'] ?? [])];
      const pairs = [...this.keyPairs].filter(([name]) => !names.length || names.includes(name));
      return tag('keySet', pairs.map(([name, k]) =>
        tag('item', tag('keyPairId', k.keyPairId) + tag('keyName', name) + tag('keyFingerprint', 'fa:ke') +
          (p.IncludePublicKey === 'true' ? tag('publicKey', k.publicKey) : '')),
      ).join(''));
    },
    ImportKeyPair: (p) => {
      const name = p.KeyName!;
      if (this.keyPairs.has(name)) throw { code: 'InvalidKeyPair.Duplicate', message: `The keypair '${name}' already exists.` };
      const publicKey = Buffer.from(p.PublicKeyMaterial ?? '', 'base64').toString('utf8');
      const keyPairId = `key-${hex(17)}`;
      this.keyPairs.set(name, { keyPairId, publicKey });
      return tag('keyName', name) + tag('keyFingerprint', 'fa:ke') + tag('keyPairId', keyPairId);
    },
    DescribeSecurityGroups: (p) => {
      const ids = list(p, 'GroupId');
      const names = [...list(p, 'GroupName'), ...(filtersOf(p)['group-name'] ?? [])];
      for (const id of ids) {
        if (![...this.securityGroups.values()].some((g) => g.groupId === id)) {
          throw { code: 'InvalidGroup.NotFound', message: `The security group '${id}' does not exist` };
        }
      }
      const groups = [...this.securityGroups.values()].filter(
        (g) => (!ids.length || ids.includes(g.groupId)) && (!names.length || names.includes(g.name)),
      );
      return tag('securityGroupInfo', groups.map((g) =>
        tag('item', tag('ownerId', '123456789012') + tag('groupId', g.groupId) + tag('groupName', g.name) +
          tag('groupDescription', g.description) + tag('vpcId', 'vpc-0fake')),
      ).join(''));
    },
    CreateSecurityGroup: (p) => {
      const name = p.GroupName!;
      if ([...this.securityGroups.values()].some((g) => g.name === name)) {
        throw { code: 'InvalidGroup.Duplicate', message: `The security group '${name}' already exists for VPC 'vpc-0fake'` };
      }
      const groupId = `sg-${hex(17)}`;
      this.securityGroups.set(groupId, { groupId, name, description: p.GroupDescription ?? '', ports: [] });
      return tag('return', 'true') + tag('groupId', groupId);
    },
    AuthorizeSecurityGroupIngress: (p) => {
      const group = this.securityGroups.get(p.GroupId ?? '');
      if (!group) throw { code: 'InvalidGroup.NotFound', message: `The security group '${p.GroupId}' does not exist` };
      group.ports.push(...ingressPorts(p));
      return tag('return', 'true');
    },
    RunInstances: (p) => {
      const type = p.InstanceType ?? 'm1.small';
      if (!/^[a-z][a-z0-9-]*\.[a-z0-9]+$/.test(type) || type.includes('huge')) {
        throw { code: 'InvalidParameterValue', message: `Invalid value '${type}' for InstanceType.` };
      }
      if (!this.images.some((i) => i.imageId === p.ImageId)) {
        throw { code: 'InvalidAMIID.NotFound', message: `The image id '[${p.ImageId}]' does not exist` };
      }
      const instance: FakeInstance = {
        instanceId: `i-${hex(17)}`,
        imageId: p.ImageId!,
        instanceType: type,
        keyName: p.KeyName,
        state: 'pending',
        pendingPolls: this.pendingPolls,
        publicIp: this.instanceAddress,
        privateIp: `172.31.0.${this.nextIp++}`,
        tags: tagsOf(p, 'instance'),
        userData: p.UserData ? Buffer.from(p.UserData, 'base64').toString('utf8') : undefined,
        securityGroupIds: list(p, 'SecurityGroupId'),
      };
      this.instances.set(instance.instanceId, instance);
      return tag('reservationId', `r-${hex(17)}`) + tag('ownerId', '123456789012') + tag('groupSet', '') +
        tag('instancesSet', instanceXml(instance, false));
    },
    DescribeInstances: (p) => {
      const ids = list(p, 'InstanceId');
      const filters = filtersOf(p);
      for (const id of ids) {
        if (!this.instances.has(id)) throw { code: 'InvalidInstanceID.NotFound', message: `The instance ID '${id}' does not exist` };
      }
      const found = [...this.instances.values()].filter((i) => {
        if (ids.length && !ids.includes(i.instanceId)) return false;
        const tagFilters = Object.entries(filters).filter(([k]) => k.startsWith('tag:'));
        if (tagFilters.some(([k, values]) => !values.includes(i.tags[k.slice(4)] ?? ''))) return false;
        return matches(filters, { 'instance-state-name': i.state });
      });
      for (const i of found) {
        if (i.state === 'pending' && i.pendingPolls-- <= 0) i.state = 'running';
      }
      return tag('reservationSet', found.map((i) =>
        tag('item', tag('reservationId', `r-${hex(17)}`) + tag('ownerId', '123456789012') + tag('groupSet', '') +
          tag('instancesSet', instanceXml(i, true))),
      ).join(''));
    },
    CreateTags: (p) => {
      for (const id of list(p, 'ResourceId')) {
        const instance = this.instances.get(id);
        if (instance) Object.assign(instance.tags, tagsOf(p));
      }
      return tag('return', 'true');
    },
    TerminateInstances: (p) => {
      const items = list(p, 'InstanceId').map((id) => {
        const i = this.instances.get(id);
        if (!i) throw { code: 'InvalidInstanceID.NotFound', message: `The instance ID '${id}' does not exist` };
        const previous = i.state;
        i.state = 'shutting-down';
        return tag('item', tag('instanceId', id) + stateXml('currentState', i.state) + stateXml('previousState', previous));
      });
      return tag('instancesSet', items.join(''));
    },
  };
}

function send(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'text/xml;charset=UTF-8' });
  res.end(body);
}

/** EC2's error document (note: <Response><Errors>, and RequestID in capitals). */
function errorXml(error: FakeError, requestId: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>${escapeXml(error.code)}</Code><Message>${escapeXml(error.message)}</Message></Error></Errors><RequestID>${requestId}</RequestID></Response>`;
}

function instanceXml(i: FakeInstance, withAddresses: boolean): string {
  const running = i.state === 'running';
  return tag('item', [
    tag('instanceId', i.instanceId),
    tag('imageId', i.imageId),
    stateXml('instanceState', i.state),
    tag('privateDnsName', ''),
    i.keyName ? tag('keyName', i.keyName) : '',
    tag('instanceType', i.instanceType),
    tag('launchTime', new Date().toISOString()),
    withAddresses ? tag('privateIpAddress', i.privateIp) : '',
    // Like EC2: the public address shows once the instance runs.
    withAddresses && running ? tag('ipAddress', i.publicIp) : '',
    tag('groupSet', i.securityGroupIds.map((g) => tag('item', tag('groupId', g))).join('')),
    tag('tagSet', Object.entries(i.tags).map(([k, v]) => tag('item', tag('key', k) + tag('value', v))).join('')),
  ].join(''));
}

function stateXml(name: string, state: FakeInstance['state']): string {
  return tag(name, tag('code', String(STATE_CODES[state])) + tag('name', state));
}

function tag(name: string, content: string): string {
  return `<${name}>${content.startsWith('<') || content === '' ? content : escapeXml(content)}</${name}>`;
}

function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function hex(n: number): string {
  return randomBytes(Math.ceil(n / 2)).toString('hex').slice(0, n);
}

function randomRequestId(): string {
  const h = randomBytes(16).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Values of a query list: Owner.1, Owner.2, … */
export function list(p: Record<string, string>, prefix: string): string[] {
  const out: string[] = [];
  for (let i = 1; p[`${prefix}.${i}`] !== undefined; i++) out.push(p[`${prefix}.${i}`]!);
  return out;
}

/** Filter.N.Name / Filter.N.Value.M as { name: [values] }. */
export function filtersOf(p: Record<string, string>): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (let i = 1; p[`Filter.${i}.Name`] !== undefined; i++) out[p[`Filter.${i}.Name`]!] = list(p, `Filter.${i}.Value`);
  return out;
}

/** Tags of TagSpecification.N (of `resourceType`, or all) or of CreateTags' Tag.N. */
export function tagsOf(p: Record<string, string>, resourceType?: string): Record<string, string> {
  const out: Record<string, string> = {};
  const collect = (prefix: string) => {
    for (let j = 1; p[`${prefix}.${j}.Key`] !== undefined; j++) out[p[`${prefix}.${j}.Key`]!] = p[`${prefix}.${j}.Value`] ?? '';
  };
  if (p['Tag.1.Key'] !== undefined) collect('Tag');
  for (let i = 1; p[`TagSpecification.${i}.ResourceType`] !== undefined; i++) {
    if (!resourceType || p[`TagSpecification.${i}.ResourceType`] === resourceType) collect(`TagSpecification.${i}.Tag`);
  }
  return out;
}

/** Ports opened by AuthorizeSecurityGroupIngress (IpPermissions.N.FromPort … ToPort). */
export function ingressPorts(p: Record<string, string>): number[] {
  const ports: number[] = [];
  for (let i = 1; p[`IpPermissions.${i}.FromPort`] !== undefined; i++) {
    const from = Number(p[`IpPermissions.${i}.FromPort`]);
    const to = Number(p[`IpPermissions.${i}.ToPort`] ?? from);
    for (let port = from; port <= to && port - from < 1024; port++) ports.push(port);
  }
  return ports;
}

/** Shell-style wildcard match of EC2 filters (only `*`). */
function matches(filters: Record<string, string[]>, fields: Record<string, string>): boolean {
  return Object.entries(filters).every(([name, values]) => {
    if (!(name in fields)) return true;
    return values.some((v) => new RegExp(`^${v.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`).test(fields[name]!));
  });
}
