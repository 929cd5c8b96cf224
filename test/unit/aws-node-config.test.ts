import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { ConfigError } from '../../core/errors.ts';
import { configSchema } from '../helpers/config.ts';
import { withHostsEntry } from '../../tools/hosts-file.ts';
import { addNode, nodeSnippet, recordedNode, recordedNodeComment, removeNode } from '../../tools/aws/node-config.ts';

const CONFIG = `# Shop: deployed with Kraftwerk
domain: shop.example.com   # canonical
services: [postgres]

nodes:
  # the old box
  production: root@shop.example.com
  stage:
    host: 10.0.0.5  # behind the VPN

workers: 4
`;

const node = { host: '203.0.113.7', user: 'admin', sudo: true };

describe('recording nodes in kraftwerk.yaml', () => {
  it('adds the node under nodes: and keeps every comment and key order', () => {
    const out = addNode(CONFIG, 'web1', node, { comment: 'EC2 i-0abc in eu-central-1, made by kraftwerk create-node' });
    // yaml normalises the space before a trailing comment; everything else stays.
    for (const line of CONFIG.trimEnd().split('\n')) assert.ok(out.includes(line.trim().replace(/\s+#/, ' #')), `kept: ${line}`);
    assert.match(out, /\n  # EC2 i-0abc in eu-central-1, made by kraftwerk create-node\n  web1:\n    host: 203.0.113.7\n    user: admin\n    sudo: true\n/);
    assert.ok(out.indexOf('web1:') < out.indexOf('workers: 4'), 'inside nodes:, before the next key');
    // Still a valid config, and the new node is what setup-node will read.
    const config = configSchema.parse(parse(out));
    assert.deepEqual(config.nodes.web1, node);
    assert.equal(recordedNodeComment(out, 'web1'), ' EC2 i-0abc in eu-central-1, made by kraftwerk create-node');
  });

  it('creates nodes: when the file has none, and turns nodes: {} into a block', () => {
    const out = addNode('domain: a.example.com\n', 'web1', node);
    assert.deepEqual(parse(out).nodes, { web1: node });
    const flow = addNode('domain: a.example.com\nnodes: {}\n', 'web1', node);
    assert.match(flow, /^nodes:\n  web1:\n    host: 203\.0\.113\.7$/m);
  });

  it('refuses a name that is already recorded', () => {
    assert.throws(() => addNode(CONFIG, 'stage', node, { file: '/p/kraftwerk.yaml' }), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.match(e.message, /\/p\/kraftwerk.yaml: nodes.stage: a node of this name is already recorded/);
      return true;
    });
  });

  it('reads a recorded node in any of its forms', () => {
    assert.equal(recordedNode(CONFIG, 'production'), 'root@shop.example.com');
    assert.deepEqual(recordedNode(CONFIG, 'stage'), { host: '10.0.0.5' });
    assert.equal(recordedNode(CONFIG, 'web1'), undefined);
  });

  it('removes a node with its comment and leaves the rest as it was', () => {
    const added = addNode(CONFIG, 'web1', node, { comment: 'EC2 i-0abc' });
    const out = removeNode(added, 'web1');
    assert.ok(!out.includes('web1') && !out.includes('i-0abc'));
    assert.equal(out, CONFIG.replace(/\s+#/g, (m) => (m.startsWith('\n') ? m : ' #')));
    assert.equal(removeNode(CONFIG, 'nope'), CONFIG);
  });

  it('a node added to a file without nodes: round-trips: comment found, and nodes: removed with it', () => {
    const base = '# shop\ndomain: a.example.com\n';
    const added = addNode(base, 'web1', node, { comment: 'EC2 i-0abc' });
    // yaml attaches a comment above the first item to the map; it still belongs to web1.
    assert.equal(recordedNodeComment(addNode(added, 'web2', node), 'web1'), ' EC2 i-0abc');
    assert.equal(removeNode(added, 'web1'), base);
    const two = addNode(added, 'web2', node, { comment: 'EC2 i-0def' });
    const left = removeNode(two, 'web1');
    assert.ok(!left.includes('i-0abc'));
    assert.equal(recordedNodeComment(left, 'web2'), ' EC2 i-0def');
  });

  it('reports broken YAML with file and line', () => {
    assert.throws(() => addNode('domain: [a\nnodes:\n', 'web1', node, { file: 'k.yaml' }), /^ConfigError: k\.yaml:\d+: not valid YAML/);
  });

  it('prints the lines to add by hand', () => {
    assert.equal(nodeSnippet('web1', node), 'nodes:\n  web1:\n    host: 203.0.113.7\n    user: admin\n    sudo: true');
  });
});

describe('/etc/hosts entry', () => {
  const HOSTS = '127.0.0.1\tlocalhost\n::1 localhost ip6-localhost\n';
  it('appends the line', () => {
    assert.equal(withHostsEntry(HOSTS, '203.0.113.7', 'web1'), `${HOSTS}203.0.113.7\tweb1\n`);
    assert.equal(withHostsEntry('127.0.0.1 localhost', '203.0.113.7', 'web1'), '127.0.0.1 localhost\n203.0.113.7\tweb1\n');
  });
  it('changes nothing when the line is there', () => {
    assert.equal(withHostsEntry(`${HOSTS}203.0.113.7 web1 # kraftwerk\n`, '203.0.113.7', 'web1'), undefined);
  });
  it('replaces the old address of a re-created node, but not a shared line', () => {
    assert.equal(withHostsEntry(`${HOSTS}198.51.100.1 web1\n`, '203.0.113.7', 'web1'), `${HOSTS}203.0.113.7\tweb1\n`);
    assert.equal(
      withHostsEntry(`${HOSTS}198.51.100.1 web1 web1.lan\n`, '203.0.113.7', 'web1'),
      `${HOSTS}198.51.100.1 web1 web1.lan\n203.0.113.7\tweb1\n`,
    );
  });
});
