import { KraftwerkError, UsageError } from '../../core/index.ts';

/**
 * Turns what the AWS SDK throws into one KraftwerkError line that says what to
 * do. Works on the error's shape (name, message, $metadata) so that this file
 * never loads the SDK.
 */

/** The line the user sees when the credential chain finds nothing (exit 2). */
export const NO_CREDENTIALS =
  'no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or AWS_PROFILE';

interface AwsLikeError {
  name?: string;
  message?: string;
  code?: string;
  $metadata?: { httpStatusCode?: number; requestId?: string };
}

function asAws(err: unknown): AwsLikeError {
  return typeof err === 'object' && err !== null ? (err as AwsLikeError) : { message: String(err) };
}

/** Errors from resolving credentials and region, before any request is sent. */
export function mapSetupError(err: unknown): KraftwerkError | undefined {
  const e = asAws(err);
  const message = e.message ?? '';
  if (e.name === 'CredentialsProviderError' || /could not load credentials/i.test(message)) {
    const profile = process.env.AWS_PROFILE;
    if (profile) {
      return new UsageError(
        `no AWS credentials found for AWS_PROFILE=${profile}: add the profile to ~/.aws/credentials or ~/.aws/config (aws configure --profile ${profile})`,
      );
    }
    return new UsageError(NO_CREDENTIALS);
  }
  if (/region is missing/i.test(message)) {
    return new UsageError('no AWS region given: pass --region (e.g. --region eu-central-1) or set AWS_REGION');
  }
  return undefined;
}

/**
 * One line for an error of the EC2 call `operation` (e.g. "RunInstances").
 * `context` adds what was asked (instance type, region) to the message.
 */
export function mapEc2Error(
  err: unknown,
  operation: string,
  context: { region?: string; instanceType?: string; imageId?: string; endpoint?: string } = {},
): KraftwerkError {
  if (err instanceof KraftwerkError) return err;
  const setup = mapSetupError(err);
  if (setup) return setup;
  const e = asAws(err);
  const code = e.name ?? 'Error';
  // EC2 messages are single sentences; keep only the first line in case a proxy sent a page.
  const awsMessage = (e.message ?? '').split('\n')[0]!.trim();
  const where = context.region ? ` in ${context.region}` : '';
  switch (code) {
    case 'AuthFailure':
    case 'InvalidClientTokenId':
    case 'SignatureDoesNotMatch':
    case 'UnrecognizedClientException':
      return new KraftwerkError(`AWS rejected the credentials (${code}) when calling ${operation}`, {
        hint: 'Check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or the keys of AWS_PROFILE): the key must exist and be active.',
        cause: err,
      });
    case 'ExpiredToken':
    case 'RequestExpired':
      return new KraftwerkError(`the AWS session token has expired (${code})`, {
        hint: 'Log in again (aws sso login, or fresh AWS_SESSION_TOKEN), and check that the clock of this machine is right.',
        cause: err,
      });
    case 'UnauthorizedOperation':
      return new KraftwerkError(`your AWS identity may not call ec2:${operation}${where} (UnauthorizedOperation)`, {
        hint: `Grant ec2:${operation} to the IAM user or role (e.g. the AmazonEC2FullAccess policy), or use other credentials.`,
        cause: err,
      });
    case 'InstanceLimitExceeded':
    case 'VcpuLimitExceeded':
    case 'MaxSpotInstanceCountExceeded':
      return new KraftwerkError(`EC2 quota reached${where} (${code}): ${awsMessage}`, {
        hint: 'Terminate instances you no longer need (kraftwerk destroy-node NAME), or ask for a higher limit in the AWS console under Service Quotas → EC2.',
        cause: err,
      });
    case 'InsufficientInstanceCapacity':
      return new KraftwerkError(`AWS has no capacity for ${context.instanceType ?? 'this size'}${where} right now`, {
        hint: 'Try again later, another --size, or another --region.',
        cause: err,
      });
    case 'Unsupported':
    case 'InvalidParameterCombination':
      return new KraftwerkError(`EC2 cannot run this combination${where} (${code}): ${awsMessage}`, {
        hint: 'Pick another --size (e.g. t3.micro) or --image; some sizes need a matching architecture or are not offered in every zone.',
        cause: err,
      });
    case 'InvalidParameterValue':
      if (/instance ?type/i.test(awsMessage)) {
        return new KraftwerkError(`unknown instance size ${context.instanceType ?? ''}${where}`.replace('  ', ' '), {
          hint: 'Use a size EC2 offers in the region, such as t3.micro or t3.small (list them with: aws ec2 describe-instance-types).',
          cause: err,
        });
      }
      break;
    case 'InvalidAMIID.NotFound':
    case 'InvalidAMIID.Malformed':
    case 'InvalidAMIID.Unavailable':
      return new KraftwerkError(`image ${context.imageId ?? ''} does not exist${where} (${code})`.replace('  ', ' '), {
        hint: 'AMI ids differ between regions: pass --image debian-12 to use the newest official Debian 12 image of the region.',
        cause: err,
      });
    case 'VPCIdNotSpecified':
    case 'MissingInput':
      if (/vpc|subnet/i.test(awsMessage)) {
        return new KraftwerkError(`the region${where} has no default VPC to launch into (${code})`, {
          hint: 'Create one with: aws ec2 create-default-vpc, or launch in a region that has one.',
          cause: err,
        });
      }
      break;
    case 'InvalidGroup.NotFound':
    case 'InvalidGroupId.Malformed':
      return new KraftwerkError(`security group not found${where} (${code}): ${awsMessage}`, {
        hint: 'Pass an existing group id or name with --security-group, or leave it out to use kraftwerk-web.',
        cause: err,
      });
    case 'InvalidKeyPair.Format':
      return new KraftwerkError(`EC2 does not accept this public key (${code}): ${awsMessage}`, {
        hint: 'EC2 imports ed25519 and RSA keys: pass --key with such a .pub file (ssh-keygen -t ed25519 creates one).',
        cause: err,
      });
  }
  const network = networkError(err);
  if (network) {
    return new KraftwerkError(`cannot reach EC2${context.endpoint ? ` at ${context.endpoint}` : where}: ${network}`, {
      hint: 'Check the network connection and --region (or --endpoint).',
      cause: err,
    });
  }
  return new KraftwerkError(`EC2 ${operation} failed${where}: ${code}${awsMessage ? `: ${awsMessage}` : ''}`, {
    cause: err,
  });
}

function networkError(err: unknown): string | undefined {
  const e = err as { code?: string; message?: string; cause?: unknown; errors?: unknown[] } | undefined;
  const codes = ['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH'];
  let cur: typeof e = e;
  for (let depth = 0; cur && depth < 5; depth++) {
    if (cur.code && codes.includes(cur.code)) return `${cur.code} ${cur.message ?? ''}`.trim();
    if (Array.isArray(cur.errors) && cur.errors.length) cur = cur.errors[0] as typeof e;
    else cur = cur.cause as typeof e;
  }
  return undefined;
}
