import { z } from 'zod';
import type { ConfigSchema } from './settings.ts';

/**
 * JSON Schema of kraftwerk.yaml, generated from the zod schema so that the two
 * cannot drift (a test compares it with the committed schema/kraftwerk.schema.json).
 *
 * Editors that use the YAML language server (VS Code's YAML extension, Neovim's
 * yamlls, JetBrains IDEs) complete and check kraftwerk.yaml with it. Either
 * write the schema next to the config and point a modeline at it:
 *
 *     kraftwerk schema > .kraftwerk.schema.json
 *
 *     # yaml-language-server: $schema=.kraftwerk.schema.json
 *     domain: www.example.com
 *
 * or point the modeline at the copy in the installed package
 * (`$schema=<npm root -g>/kraftwerk/schema/kraftwerk.schema.json`). A top-level
 * `$schema:` key is accepted too, for editors that read that instead.
 *
 * Draft-07 because it is the draft every YAML language server supports fully.
 * The schema describes the input: keys with defaults are optional. It has
 * core's keys and those of the plugins `config` was built with (the built-in
 * ones for `kraftwerk schema`).
 */
export function configJsonSchema(config: ConfigSchema): Record<string, unknown> {
  const schema = z.toJSONSchema(config.schema, {
    target: 'draft-7',
    io: 'input',
    unrepresentable: 'any',
    override(ctx) {
      // Plugin objects (z.custom) only exist in kraftwerk.config.ts; YAML lists plugin files.
      if ((ctx.zodSchema as { _zod: { def: { type: string } } })._zod.def.type === 'custom') {
        for (const key of Object.keys(ctx.jsonSchema)) delete ctx.jsonSchema[key];
        ctx.jsonSchema.not = {};
      }
    },
  }) as Record<string, unknown>;
  return tidy({ ...schema, title: 'kraftwerk.yaml' }) as Record<string, unknown>;
}

/** The text of schema/kraftwerk.schema.json, as `kraftwerk schema` prints it. */
export function schemaCommand(config: ConfigSchema): string {
  return `${JSON.stringify(configJsonSchema(config), null, 2)}\n`;
}

const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const JSON_SCHEMA_FORMATS = new Set(['date-time', 'date', 'time', 'email', 'hostname', 'ipv4', 'ipv6', 'uri', 'uri-reference', 'uuid', 'regex']);

/** Drops what only adds noise for editors: impossible branches, zod's integer range limits, zod-only formats. */
function tidy(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(tidy);
  if (!node || typeof node !== 'object') return node;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(node)) {
    if ((key === 'maximum' && value === MAX_SAFE) || (key === 'minimum' && value === -MAX_SAFE)) continue;
    // zod names its string checks as formats; only JSON Schema's own formats mean something to editors (the pattern stays).
    if (key === 'format' && typeof value === 'string' && !JSON_SCHEMA_FORMATS.has(value)) continue;
    out[key] = tidy(value);
  }
  for (const key of ['anyOf', 'oneOf'] as const) {
    const branches = out[key];
    if (!Array.isArray(branches)) continue;
    const possible = branches.filter((b) => !(b && typeof b === 'object' && 'not' in b && Object.keys(b).length === 1));
    if (possible.length === 1) {
      delete out[key];
      Object.assign(out, possible[0]);
    } else out[key] = possible;
  }
  return out;
}
