import { createSite, type Site } from '../../core/config/site.ts';
import { configSchema } from './config.ts';

/** A Site as core builds it from kraftwerk.yaml (core's keys and the built-in plugins'), for tests of renderers and command builders. */
export function testSite(config: Readonly<Record<string, unknown>> = {}, name = 'shop', sourceDir = '/tmp/project'): Site {
  return createSite(configSchema.parse({ domain: 'shop.example', ...config }), { configFile: `${sourceDir}/kraftwerk.yaml`, sourceDir, name });
}
