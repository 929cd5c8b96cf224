import { InvalidArgumentError, Option } from 'commander';
// Types only: this file loads at every start, the entry's values are not needed for --help.
import type { Plugin } from '../../core/index.ts';

/**
 * The aws plugin: `create-node` and `destroy-node` for EC2 (or any cloud that
 * speaks its API, through --endpoint).
 *
 * The AWS SDK is big: it is imported only inside the actions (through
 * create-node.ts / destroy-node.ts → ec2.ts), never at the top of this file,
 * so `kraftwerk --help` and every other command start without it.
 */

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new InvalidArgumentError('expected a port number (1-65535)');
  return n;
}

const regionOption = () =>
  new Option('--region <region>', 'AWS region, e.g. eu-central-1 (default: AWS_REGION or the profile\'s region)');
const endpointOption = () =>
  new Option('--endpoint <url>', 'EC2 API endpoint of a compatible cloud (default: AWS\'s endpoint of the region)');

// Not `export default {...}`: TypeScript 6.0 does not rewrite the `.ts`
// extension of dynamic imports inside an `export default` expression, and the built
// CLI would then import ./create-node.ts from dist/.
const aws: Plugin = {
  name: 'aws',
  description: 'create and destroy servers on AWS EC2 (create-node, destroy-node)',
  commands(program, kit) {
    // The CLI also has a global --yes, which commander hands to the program, not the command.
    const yes = (opts: Record<string, unknown>) => Boolean(opts.yes || (kit.options() as { yes?: boolean }).yes);
    program
      .command('create-node')
      .description('launch a Debian 12 server on AWS EC2 and record it as a node')
      .addHelpText(
        'after',
        '\nCredentials come from the standard AWS chain: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY,\n' +
          'AWS_PROFILE (~/.aws/credentials, ~/.aws/config, SSO), or an instance role.\n' +
          'The node is recorded as user admin with sudo: Debian\'s images keep root login disabled.',
      )
      .argument('<name>', 'node name: the Name tag, the host name and the key in kraftwerk.yaml nodes')
      .option('--size <type>', 'EC2 instance type', 't3.micro')
      .option('--image <ami>', 'AMI id, or debian-12 for the newest official Debian 12 image of the region', 'debian-12')
      .addOption(regionOption())
      .option('--key <file>', 'SSH public key to log in with (default ~/.ssh/id_ed25519.pub, then ~/.ssh/id_rsa.pub)')
      .option('--security-group <id-or-name>', 'security group (default kraftwerk-web, created with 22, 80 and 443 open)')
      .addOption(endpointOption())
      .addOption(new Option('--ssh-port <port>', 'port sshd listens on in the image').default(22).argParser(port))
      .option('--write-config', 'record the node in kraftwerk.yaml without asking')
      .option('--hosts', 'add "<address> <name>" to /etc/hosts without asking')
      .option('-y, --yes', 'do not ask: record the node in kraftwerk.yaml (/etc/hosts still needs --hosts)')
      .action(async (name: string, opts: Record<string, unknown>) => {
        const { createNode } = await import('./create-node.ts');
        await createNode(
          {
            name,
            size: opts.size as string,
            image: opts.image as string,
            region: opts.region as string | undefined,
            endpoint: opts.endpoint as string | undefined,
            key: opts.key as string | undefined,
            securityGroup: opts.securityGroup as string | undefined,
            sshPort: opts.sshPort as number,
            writeConfig: Boolean(opts.writeConfig),
            hosts: Boolean(opts.hosts),
            yes: yes(opts),
          },
          { kit },
        );
      });

    program
      .command('destroy-node')
      .description('terminate the EC2 instance of a node (after confirmation) and remove it from kraftwerk.yaml')
      .argument('<name>', 'node name given to create-node')
      .addOption(regionOption())
      .addOption(endpointOption())
      .option('-y, --yes', 'terminate without asking')
      .action(async (name: string, opts: Record<string, unknown>) => {
        const { destroyNode } = await import('./destroy-node.ts');
        await destroyNode(
          {
            name,
            region: opts.region as string | undefined,
            endpoint: opts.endpoint as string | undefined,
            yes: yes(opts),
          },
          { kit },
        );
      });
  },
};

export default aws;
