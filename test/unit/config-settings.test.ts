/**
 * Plugins own their config: the keys a plugin declares (`settings`) are merged
 * with core's into the schema of kraftwerk.yaml, and read back typed through
 * settingsOf. (The CLI tests show the same with the example plugin's file.)
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { z } from 'zod';
import { loadConfig } from '../../core/config/load.ts';
import { coreConfigSchema } from '../../core/config/schema.ts';
import { buildConfigSchema, SettingsConflictError, settingsOf } from '../../core/config/settings.ts';
import { createSite } from '../../core/config/site.ts';
import { definePlugin } from '../../core/engine/plugin.ts';
import { ConfigError } from '../../core/errors.ts';
import { builtins } from '../helpers/config.ts';

const scratch = mkdtempSync(path.join(tmpdir(), 'kw-settings-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

const greeting = { greeting: z.strictObject({ text: z.string().regex(/^[a-z ]+$/, 'lower-case words').default('hello') }).prefault({}) };
const greeter = definePlugin({ name: 'greeter', settings: greeting, apply() {} });

describe('a plugin declares its settings', () => {
  test('its keys join core\'s, validated, with defaults, and read back typed', () => {
    const schema = buildConfigSchema([greeter]);
    assert.equal(schema.owners.get('greeting'), 'greeter');
    const site = createSite(schema.parse({ domain: 'example.com', greeting: { text: 'good day' } }), { configFile: '/p/kraftwerk.yaml', sourceDir: '/p', name: 'shop' });
    const text: string = settingsOf(site, greeter).greeting.text;
    assert.equal(text, 'good day');
    assert.equal(settingsOf(createSite(schema.parse({ domain: 'example.com' }), { configFile: '', sourceDir: '/p', name: 'shop' }), greeting).greeting.text, 'hello');
    assert.ok(!('greeting' in site.config), "core's Config has core's keys only");
  });

  test('a key claimed twice is an error naming both claimants (core too)', () => {
    const twice = definePlugin({ name: 'other', settings: { greeting: z.string() }, apply() {} });
    assert.throws(() => buildConfigSchema([greeter, twice]), (e: unknown) => e instanceof SettingsConflictError && /plugin other declares the setting `greeting`, which plugin greeter already owns/.test(e.message) && e.exitCode === 2);
    const core = definePlugin({ name: 'sneaky', settings: { domain: z.string() }, apply() {} });
    assert.throws(() => buildConfigSchema([core]), /plugin sneaky declares the setting `domain`, which core already owns/);
  });

  test('a setting no loaded plugin validated cannot be read (no unvalidated value reaches a plugin)', () => {
    const site = createSite(coreConfigSchema.parse({ domain: 'example.com' }), { configFile: '', sourceDir: '/p', name: 'shop' });
    assert.throws(() => settingsOf(site, greeting), /`greeting` was not validated/);
  });

  test('a kraftwerk.config.ts plugin object: its setting validated with the file, the error naming the plugin', async () => {
    const dir = mkdtempSync(path.join(scratch, 'p-'));
    const file = path.join(dir, 'kraftwerk.config.ts');
    const plugin = "{ name: 'greeter', settings: { greeting: z.strictObject({ text: z.string().regex(/^[a-z ]+$/, 'lower-case words') }) }, apply() {} }";
    writeFileSync(file, `import { defineConfig, z } from 'kraftwerk';\nexport default defineConfig({ domain: 'example.com', plugins: [${plugin}], greeting: { text: 'Hi!' } });\n`);
    await assert.rejects(loadConfig({ cwd: dir, knownServices: [], plugins: builtins }), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.equal(e.message, 'kraftwerk.config.ts: greeting.text: expected lower-case words, found the text "Hi!" (setting of plugin greeter)');
      return true;
    });
    // Another folder: a module once loaded stays loaded.
    const good = mkdtempSync(path.join(scratch, 'p-'));
    writeFileSync(path.join(good, 'kraftwerk.config.ts'), `import { defineConfig, z } from 'kraftwerk';\nexport default defineConfig({ domain: 'example.com', plugins: [${plugin}], greeting: { text: 'hi there' } });\n`);
    const { config, localPlugins } = await loadConfig({ cwd: good, knownServices: [], plugins: builtins });
    assert.deepEqual(localPlugins.map((p) => p.name), ['greeter']);
    assert.deepEqual(settingsOf(createSite(config, { configFile: '', sourceDir: good, name: 'shop' }), localPlugins[0]!).greeting, { text: 'hi there' });
  });
});
