import type { BuiltinPlugins } from '../core/index.ts';

/**
 * The built-in tools: plugins that add CLI commands and node names, not stack
 * parts. Loaded at every start to register their commands, so each keeps its
 * heavy imports (the AWS SDK) inside its actions.
 */
export const toolPlugins = {
  load: {
    sandbox: () => import('./sandbox/index.ts'),
    aws: () => import('./aws/index.ts'),
  },
  commands: ['sandbox', 'aws'],
} satisfies Pick<BuiltinPlugins, 'load' | 'commands'>;
