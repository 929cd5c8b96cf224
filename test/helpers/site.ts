import { configSchema, type ConfigInput } from '../../core/config/schema.ts';
import { createSite, type Site } from '../../core/config/site.ts';

/** A Site as core builds it from kraftwerk.yaml, for tests of renderers and command builders. */
export function testSite(config: Partial<ConfigInput> = {}, name = 'shop', sourceDir = '/tmp/project'): Site {
  return createSite(configSchema.parse({ domain: 'shop.example', ...config }), { configFile: `${sourceDir}/kraftwerk.yaml`, sourceDir, name });
}
