import { isMap, isScalar, parseDocument, stringify, type Document, type YAMLMap } from 'yaml';
import { ConfigError } from '../../core/index.ts';

/**
 * Edits `nodes:` of kraftwerk.yaml through yaml's Document API, so the user's
 * comments, key order and formatting survive.
 */

/** A node as create-node records it (the object form of kraftwerk.yaml's `nodes` entries). */
export interface RecordedNode {
  host: string;
  user?: string;
  port?: number;
  identity_file?: string;
  sudo?: boolean;
}

/** yaml's defaults pad flow collections (`[ a ]`); most hand-written files do not. */
const OUTPUT = { flowCollectionPadding: false } as const;

function parse(text: string, file: string): Document {
  const doc = parseDocument(text);
  if (doc.errors.length) {
    const err = doc.errors[0]!;
    throw new ConfigError(file, '', `not valid YAML: ${err.message.split('\n')[0]}`, { line: err.linePos?.[0]?.line });
  }
  if (doc.contents !== null && !isMap(doc.contents)) {
    throw new ConfigError(file, '', 'expected a mapping of keys (domain:, nodes:, …) at the top');
  }
  return doc;
}

/** The node `name` as written in the file (string, object or group), or undefined. */
export function recordedNode(text: string, name: string, file = 'kraftwerk.yaml'): unknown {
  const nodes = parse(text, file).get('nodes');
  if (!isMap(nodes)) return undefined;
  const node = nodes.get(name, true);
  if (node === undefined) return undefined;
  return isScalar(node) ? node.value : (node as { toJSON(): unknown }).toJSON();
}

/** The comment above nodes.<name> (create-node writes the instance id there), or ''. */
export function recordedNodeComment(text: string, name: string, file = 'kraftwerk.yaml'): string {
  const nodes = parse(text, file).get('nodes', true);
  if (!isMap(nodes)) return '';
  return commentAbove(nodes, nodes.items.findIndex((p) => isScalar(p.key) && p.key.value === name)) ?? '';
}

/**
 * The comment on the line(s) above item `index`. yaml attaches a comment above
 * the first item of a block map to the map itself, so look there for item 0.
 */
function commentAbove(map: YAMLMap, index: number): string | undefined {
  if (index < 0) return undefined;
  const key = map.items[index]!.key as { commentBefore?: string | null } | null;
  return key?.commentBefore ?? (index === 0 ? (map.commentBefore ?? undefined) : undefined);
}

/** Adds `name` under `nodes:`; `comment` goes on the line above it. Fails when the name exists. */
export function addNode(text: string, name: string, node: RecordedNode, options: { file?: string; comment?: string } = {}): string {
  const file = options.file ?? 'kraftwerk.yaml';
  const doc = parse(text, file);
  let nodes = doc.get('nodes', true);
  if (nodes === undefined || nodes === null || (isScalar(nodes) && nodes.value === null)) {
    doc.set('nodes', doc.createNode({}));
    nodes = doc.get('nodes', true);
  }
  if (!isMap(nodes)) throw new ConfigError(file, 'nodes', 'expected a mapping of node names to servers');
  if (nodes.has(name)) {
    throw new ConfigError(file, `nodes.${name}`, 'a node of this name is already recorded', {
      hint: `Choose another name, or remove nodes.${name} from ${file} first.`,
    });
  }
  // `nodes: {}` is a flow map; a new entry reads better in block style.
  nodes.flow = false;
  const pair = doc.createPair(name, node);
  if (options.comment) (pair.key as { commentBefore?: string }).commentBefore = ` ${options.comment}`;
  nodes.items.push(pair);
  return doc.toString(OUTPUT);
}

/**
 * Removes `name` from `nodes:` with the comment above it; `nodes:` goes too when
 * it ends up empty. Returns the text unchanged when the node is absent.
 */
export function removeNode(text: string, name: string, file = 'kraftwerk.yaml'): string {
  const doc = parse(text, file);
  const nodes = doc.get('nodes', true);
  if (!isMap(nodes)) return text;
  const index = nodes.items.findIndex((p) => isScalar(p.key) && p.key.value === name);
  if (index < 0) return text;
  // A comment above the first node is held by the map: it belongs to the node removed.
  if (index === 0 && !(nodes.items[0]!.key as { commentBefore?: string }).commentBefore) nodes.commentBefore = null;
  nodes.items.splice(index, 1);
  if (nodes.items.length === 0) doc.delete('nodes');
  return doc.toString(OUTPUT);
}

/** The lines to add by hand when the config is not written. */
export function nodeSnippet(name: string, node: RecordedNode): string {
  return stringify({ nodes: { [name]: node } }).trimEnd();
}
