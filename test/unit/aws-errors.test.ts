import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KraftwerkError, UsageError } from '../../core/errors.ts';
import { mapEc2Error, mapSetupError, NO_CREDENTIALS } from '../../tools/aws/errors.ts';

/** What the SDK throws for an EC2 error: name = the EC2 error code. */
const awsError = (name: string, message: string, status = 400) =>
  Object.assign(new Error(message), { name, $fault: 'client', $metadata: { httpStatusCode: status } });

const oneLine = (e: KraftwerkError) => {
  assert.ok(!e.message.includes('\n'), `one line: ${e.message}`);
  return e;
};

describe('aws error messages', () => {
  it('no credentials: one usage error line (exit 2) that says what to set', () => {
    const saved = process.env.AWS_PROFILE;
    delete process.env.AWS_PROFILE;
    try {
      const e = mapSetupError(Object.assign(new Error('Could not load credentials from any providers'), { name: 'CredentialsProviderError' }));
      assert.ok(e instanceof UsageError);
      assert.equal(e.exitCode, 2);
      assert.equal(e.message, NO_CREDENTIALS);
      assert.equal(e.hint, undefined);
    } finally {
      if (saved !== undefined) process.env.AWS_PROFILE = saved;
    }
  });

  it('a profile that does not exist is named', () => {
    const saved = process.env.AWS_PROFILE;
    process.env.AWS_PROFILE = 'shop';
    try {
      const e = mapSetupError(Object.assign(new Error('Could not load credentials from any providers'), { name: 'CredentialsProviderError' }))!;
      assert.match(e.message, /AWS_PROFILE=shop/);
      assert.match(e.message, /aws configure --profile shop/);
    } finally {
      if (saved === undefined) delete process.env.AWS_PROFILE;
      else process.env.AWS_PROFILE = saved;
    }
  });

  it('no region: says to pass --region', () => {
    const e = mapSetupError(new Error('Region is missing'))!;
    assert.equal(e.exitCode, 2);
    assert.match(e.message, /--region/);
  });

  it('bad credentials', () => {
    const e = oneLine(mapEc2Error(awsError('AuthFailure', 'AWS was not able to validate the provided access credentials', 401), 'RunInstances', { region: 'eu-central-1' }));
    assert.match(e.message, /AWS rejected the credentials \(AuthFailure\)/);
    assert.match(e.hint!, /AWS_ACCESS_KEY_ID/);
  });

  it('unknown size names the size and how to list the valid ones', () => {
    const e = oneLine(mapEc2Error(awsError('InvalidParameterValue', "Invalid value 't3.huge' for InstanceType."), 'RunInstances', {
      region: 'eu-central-1',
      instanceType: 't3.huge',
    }));
    assert.equal(e.message, 'unknown instance size t3.huge in eu-central-1');
    assert.match(e.hint!, /describe-instance-types/);
  });

  it('quotas: instance and vCPU limits', () => {
    for (const code of ['InstanceLimitExceeded', 'VcpuLimitExceeded']) {
      const e = oneLine(mapEc2Error(awsError(code, 'You have requested more vCPU capacity than your current vCPU limit of 1 allows'), 'RunInstances', { region: 'us-east-1' }));
      assert.match(e.message, new RegExp(`EC2 quota reached in us-east-1 \\(${code}\\)`));
      assert.match(e.hint!, /Service Quotas/);
    }
  });

  it('missing permission names the EC2 action to grant', () => {
    const e = oneLine(mapEc2Error(awsError('UnauthorizedOperation', 'You are not authorized to perform this operation. Encoded authorization failure message: abc', 403), 'CreateSecurityGroup'));
    assert.match(e.message, /may not call ec2:CreateSecurityGroup/);
    assert.match(e.hint!, /Grant ec2:CreateSecurityGroup/);
  });

  it('an unreachable endpoint is a network error, not a stack trace', () => {
    const cause = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' });
    const e = oneLine(mapEc2Error(Object.assign(new Error('socket hang up'), { cause }), 'DescribeImages', { endpoint: 'http://127.0.0.1:9' }));
    assert.match(e.message, /cannot reach EC2 at http:\/\/127.0.0.1:9: ECONNREFUSED/);
  });

  it('any other EC2 error keeps its code and first line', () => {
    const e = oneLine(mapEc2Error(awsError('InvalidSubnetID.NotFound', "The subnet ID 'subnet-1' does not exist\n<html>"), 'RunInstances', { region: 'eu-west-1' }));
    assert.equal(e.message, "EC2 RunInstances failed in eu-west-1: InvalidSubnetID.NotFound: The subnet ID 'subnet-1' does not exist");
  });
});
