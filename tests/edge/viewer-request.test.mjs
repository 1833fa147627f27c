import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import {
  loadFunction, basicHash, basicHeader, requestEvent, defaultRequestConfig, functionsDir, deployedCode,
} from './harness.mjs';

const FILE = 'viewer-request.js';
const DIGEST = 'sha256:' + 'ab'.repeat(32);

test('the function stays within the CloudFront Functions limits', () => {
  const { code } = loadFunction(FILE, defaultRequestConfig({
    basicAuthSha256: [basicHash('a', 'b'), basicHash('c', 'd')],
    allowCidrs: ['203.0.113.0/24', '2001:db8::/32'],
  }));
  assert.ok(Buffer.byteLength(code) < 10240, `code is ${Buffer.byteLength(code)} bytes, limit 10 KB`);
  const text = readFileSync(path.join(functionsDir, FILE), 'utf8');
  assert.doesNotMatch(text, /\bimport\s|\bexport\s|=>|\basync\b|\bawait\b/, 'no module syntax, arrows or async');
});

test('/v2/ and /v2 are rewritten to the ping object', () => {
  const { handler } = loadFunction(FILE, defaultRequestConfig());
  for (const uri of ['/v2/', '/v2']) {
    const out = handler(requestEvent(uri));
    assert.equal(out.uri, '/v2/index.json', uri);
    assert.equal(out.statusCode, undefined);
  }
});

test('HEAD of the ping is rewritten too', () => {
  const { handler } = loadFunction(FILE, defaultRequestConfig());
  assert.equal(handler(requestEvent('/v2/', { method: 'HEAD' })).uri, '/v2/index.json');
});

test('registry paths pass through unchanged, colon included', () => {
  const { handler } = loadFunction(FILE, defaultRequestConfig());
  for (const uri of [
    `/v2/aquasecurity/trivy-db/blobs/${DIGEST}`,
    `/v2/aquasecurity/trivy-db/manifests/${DIGEST}`,
    '/v2/aquasecurity/trivy-db/manifests/2',
    '/v2/aquasecurity/trivy-checks/tags/list',
    '/.well-known/vex-repository.json',
    '/status.json',
    '/v2/index.json',
    '/v2x/',
  ]) {
    assert.equal(handler(requestEvent(uri)).uri, uri);
  }
});

test('without credentials configured, nobody is challenged', () => {
  const { handler } = loadFunction(FILE, defaultRequestConfig());
  const out = handler(requestEvent('/v2/aquasecurity/trivy-db/manifests/2'));
  assert.equal(out.statusCode, undefined);
});

test('Basic auth: /v2/ without credentials answers 401 with a Basic challenge', () => {
  const { handler } = loadFunction(FILE, defaultRequestConfig({ basicAuthSha256: [basicHash('ci', 'correct horse battery')], realm: 'my mirror' }));
  const out = handler(requestEvent('/v2/'));
  assert.equal(out.statusCode, 401);
  assert.match(out.headers['www-authenticate'].value, /^Basic realm="my mirror"/);
  assert.equal(out.headers['cache-control'].value, 'no-store');
  assert.equal(JSON.parse(out.body.data).errors[0].code, 'UNAUTHORIZED');
});

test('Basic auth: every path is protected, right credentials pass and the ping is still rewritten', () => {
  const { handler } = loadFunction(FILE, defaultRequestConfig({
    basicAuthSha256: [basicHash('ci', 'correct horse battery'), basicHash('dev', 'another long secret')],
  }));
  for (const uri of [`/v2/aquasecurity/trivy-db/blobs/${DIGEST}`, '/main.tar.gz', '/.well-known/vex-repository.json']) {
    assert.equal(handler(requestEvent(uri)).statusCode, 401, uri);
  }
  const ok = handler(requestEvent('/v2/', { headers: { Authorization: basicHeader('dev', 'another long secret') } }));
  assert.equal(ok.uri, '/v2/index.json');
  const blob = handler(requestEvent(`/v2/aquasecurity/trivy-db/blobs/${DIGEST}`, { headers: { Authorization: basicHeader('ci', 'correct horse battery') } }));
  assert.equal(blob.uri, `/v2/aquasecurity/trivy-db/blobs/${DIGEST}`);
});

test('Basic auth: wrong password, wrong scheme and a bearer token are refused', () => {
  const { handler } = loadFunction(FILE, defaultRequestConfig({ basicAuthSha256: [basicHash('ci', 'correct horse battery')] }));
  for (const value of [basicHeader('ci', 'wrong'), basicHeader('other', 'correct horse battery'), 'Bearer abc', 'basic ' + Buffer.from('ci:correct horse battery').toString('base64'), '']) {
    assert.equal(handler(requestEvent('/v2/', { headers: { Authorization: value } })).statusCode, 401, value);
  }
});

test('IP allow-list: IPv4 and IPv6 ranges, others get 403 before auth', () => {
  const { handler } = loadFunction(FILE, defaultRequestConfig({
    allowCidrs: ['203.0.113.0/24', '198.51.100.7/32', '2001:db8:abcd::/48'],
    basicAuthSha256: [basicHash('ci', 'correct horse battery')],
  }));
  const auth = { Authorization: basicHeader('ci', 'correct horse battery') };
  for (const ip of ['203.0.113.1', '203.0.113.255', '198.51.100.7', '2001:db8:abcd:12::1', '2001:DB8:ABCD::', '::ffff:203.0.113.9']) {
    assert.equal(handler(requestEvent('/v2/', { ip, headers: auth })).uri, '/v2/index.json', ip);
  }
  for (const ip of ['203.0.114.1', '198.51.100.8', '10.0.0.1', '2001:db8:abce::1', '::1', 'not-an-ip', '']) {
    const out = handler(requestEvent('/v2/', { ip, headers: auth }));
    assert.equal(out.statusCode, 403, ip);
  }
  // Refused addresses never learn whether a password would have worked.
  assert.equal(handler(requestEvent('/v2/', { ip: '192.0.2.1' })).statusCode, 403);
});

test('IP allow-list: odd prefix lengths and full IPv6 forms', () => {
  const { handler } = loadFunction(FILE, defaultRequestConfig({ allowCidrs: ['192.0.2.128/25', '2001:db8::/33', '0.0.0.0/0'] }));
  assert.equal(handler(requestEvent('/x', { ip: '8.8.8.8' })).statusCode, undefined, '0.0.0.0/0 allows all IPv4');
  const v6only = loadFunction(FILE, defaultRequestConfig({ allowCidrs: ['2001:db8::/33'] })).handler;
  assert.equal(v6only(requestEvent('/x', { ip: '2001:0db8:7fff:0000:0000:0000:0000:0001' })).statusCode, undefined);
  assert.equal(v6only(requestEvent('/x', { ip: '2001:db8:8000::1' })).statusCode, 403);
  assert.equal(v6only(requestEvent('/x', { ip: '192.0.2.200' })).statusCode, 403);
  const v4 = loadFunction(FILE, defaultRequestConfig({ allowCidrs: ['192.0.2.128/25'] })).handler;
  assert.equal(v4(requestEvent('/x', { ip: '192.0.2.128' })).statusCode, undefined);
  assert.equal(v4(requestEvent('/x', { ip: '192.0.2.127' })).statusCode, 403);
});

test('VEX archive: conditional request headers are dropped so no 304 can happen', () => {
  const { handler } = loadFunction(FILE, defaultRequestConfig({ vexArchivePaths: ['/vexhub/main.tar.gz', '/vexhub/main.zip'] }));
  const out = handler(requestEvent('/vexhub/main.tar.gz', { headers: { 'If-None-Match': '"abc"', 'If-Modified-Since': 'Tue, 01 Jan 2030 00:00:00 GMT', 'User-Agent': 'trivy/0.72.0' } }));
  assert.equal(out.headers['if-none-match'], undefined);
  assert.equal(out.headers['if-modified-since'], undefined);
  assert.equal(out.headers['user-agent'].value, 'trivy/0.72.0');
  const other = handler(requestEvent('/vexhub/.well-known/vex-repository.json', { headers: { 'If-None-Match': '"abc"' } }));
  assert.equal(other.headers['if-none-match'].value, '"abc"', 'only the archive loses them');
});

test('VEX archive: with the toggle off, conditional requests pass', () => {
  const { handler } = loadFunction(FILE, defaultRequestConfig({ stripVexRevalid: false }));
  const out = handler(requestEvent('/main.tar.gz', { headers: { 'If-None-Match': '"abc"' } }));
  assert.equal(out.headers['if-none-match'].value, '"abc"');
});

test('Basic auth: the Authorization header is removed once checked, so the origin never sees it', () => {
  const header = basicHeader('ci', 'correct horse battery');
  const { handler } = loadFunction(FILE, defaultRequestConfig({ basicAuthSha256: [basicHash('ci', 'correct horse battery')] }));
  for (const uri of ['/v2/', `/v2/aquasecurity/trivy-db/blobs/${DIGEST}`, '/main.tar.gz']) {
    const out = handler(requestEvent(uri, { headers: { Authorization: header, 'User-Agent': 'trivy/0.76.0' } }));
    assert.equal(out.statusCode, undefined, uri);
    assert.equal(out.headers.authorization, undefined, `${uri}: Authorization must not reach the origin`);
    assert.equal(out.headers['user-agent'].value, 'trivy/0.76.0', 'other headers stay');
  }
  // Without auth configured, a stray Authorization header is not passed on either.
  const open = loadFunction(FILE, defaultRequestConfig()).handler;
  assert.equal(open(requestEvent('/v2/', { headers: { Authorization: 'Bearer x' } })).headers.authorization, undefined);
});

// CloudFront's function size limit and the module's precondition (cdn.tf) and plan tests
// (terraform/modules/aws/tests/limits.tftest.hcl) agree on the same numbers.
const LIMIT = 10240;
const MAX_CREDENTIALS = 74;
const MAX_CIDRS = 324; // of the form 10.N.M.0/24, as cidrsubnet("10.0.0.0/8", 16, i) makes them

function sizeWith(credentials, cidrs) {
  const config = defaultRequestConfig({
    basicAuthSha256: Array.from({ length: credentials }, (_, i) => basicHash(`user${i}`, `a-long-password-${i}`)),
    allowCidrs: Array.from({ length: cidrs }, (_, i) => `10.${Math.floor(i / 256)}.${i % 256}.0/24`),
  });
  return Buffer.byteLength(deployedCode(FILE, config));
}

test('size precondition: the credential and CIDR thresholds of the 10 KB limit', () => {
  assert.ok(sizeWith(MAX_CREDENTIALS, 0) <= LIMIT, `${MAX_CREDENTIALS} credentials: ${sizeWith(MAX_CREDENTIALS, 0)} bytes`);
  assert.ok(sizeWith(MAX_CREDENTIALS + 1, 0) > LIMIT, `${MAX_CREDENTIALS + 1} credentials must exceed the limit`);
  assert.ok(sizeWith(0, MAX_CIDRS) <= LIMIT, `${MAX_CIDRS} CIDRs: ${sizeWith(0, MAX_CIDRS)} bytes`);
  assert.ok(sizeWith(0, MAX_CIDRS + 1) > LIMIT, `${MAX_CIDRS + 1} CIDRs must exceed the limit`);
  // Each credential costs the same 67 bytes (64 hex digits, two quotes, a comma).
  assert.equal(sizeWith(11, 0) - sizeWith(10, 0), 67);

  const repo = path.resolve(functionsDir, '../../../..');
  const cdn = readFileSync(path.join(repo, 'terraform/modules/aws/cdn.tf'), 'utf8');
  assert.match(cdn, /cloudfront_function_max_bytes = 10240/);
  assert.match(cdn, /nonsensitive\(length\(local\.viewer_request_code\)\) <= local\.cloudfront_function_max_bytes/);
  const limits = readFileSync(path.join(repo, 'terraform/modules/aws/tests/limits.tftest.hcl'), 'utf8');
  for (const n of [MAX_CREDENTIALS, MAX_CREDENTIALS + 1, MAX_CIDRS, MAX_CIDRS + 1]) {
    assert.ok(limits.includes(`range(${n})`), `limits.tftest.hcl must test ${n}`);
  }
});

test('the function still works at the size limit', () => {
  const config = defaultRequestConfig({
    basicAuthSha256: Array.from({ length: MAX_CREDENTIALS }, (_, i) => basicHash(`user${i}`, `a-long-password-${i}`)),
  });
  const { handler, code } = loadFunction(FILE, config);
  assert.ok(Buffer.byteLength(code) <= LIMIT);
  const last = MAX_CREDENTIALS - 1;
  const ok = handler(requestEvent('/v2/', { headers: { Authorization: basicHeader(`user${last}`, `a-long-password-${last}`) } }));
  assert.equal(ok.uri, '/v2/index.json');
  assert.equal(handler(requestEvent('/v2/')).statusCode, 401);
});
