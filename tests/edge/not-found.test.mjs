// The registry error document that the AWS and GCP modules serve for every 404 (CloudFront
// custom_error_response, Cloud CDN custom error response policy), checked against what Trivy does
// with an error response when it has more than one repository to try.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { functionsDir } from './harness.mjs';

const repo = path.resolve(functionsDir, '../../../..');
const docs = {
  aws: readFileSync(path.join(repo, 'terraform/modules/aws/errors/404.json'), 'utf8'),
  gcp: readFileSync(path.join(repo, 'terraform/modules/gcp/errors/404.json'), 'utf8'),
};

// A transcription of the decision Trivy takes after a failed download (aquasecurity/trivy
// pkg/oci/artifact.go shouldTryOtherRepo, on go-containerregistry's transport.Error): the body is
// parsed as {"errors":[{"code":...}]}; the next repository is tried if the error is temporary
// (no parsable codes and status 408/500/502/503/504, or every code one of BLOB_UPLOAD_INVALID,
// TOOMANYREQUESTS, UNKNOWN, UNAVAILABLE) or if any code is BLOB_UNKNOWN.
function trivyTriesNextRepository(status, body) {
  let codes = [];
  try {
    const parsed = JSON.parse(body);
    codes = Array.isArray(parsed.errors) ? parsed.errors.map((e) => e.code) : [];
  } catch {
    codes = [];
  }
  const temporaryCodes = new Set(['BLOB_UPLOAD_INVALID', 'TOOMANYREQUESTS', 'UNKNOWN', 'UNAVAILABLE']);
  const temporary = codes.length === 0 ? [408, 500, 502, 503, 504].includes(status) : codes.every((c) => temporaryCodes.has(c));
  return temporary || codes.includes('BLOB_UNKNOWN');
}

test('the error document is registry JSON with BLOB_UNKNOWN, identical for every cloud', () => {
  assert.equal(docs.aws, docs.gcp, 'one document for AWS and GCP');
  const parsed = JSON.parse(docs.aws);
  assert.deepEqual(Object.keys(parsed), ['errors']);
  assert.equal(parsed.errors.length, 1);
  assert.equal(parsed.errors[0].code, 'BLOB_UNKNOWN');
  assert.equal(typeof parsed.errors[0].message, 'string');
  assert.ok(Buffer.byteLength(docs.aws) < 1024, 'small enough for any error page');
});

test('with the document, a missing tag or blob makes Trivy try its next repository', () => {
  assert.equal(trivyTriesNextRepository(404, docs.aws), true);
});

test('without it, the object stores\' own 404 bodies stop Trivy at the mirror', () => {
  const s3 = '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>';
  const gcs = '<?xml version=\'1.0\' encoding=\'UTF-8\'?><Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>';
  const azure = '\uFEFF<?xml version="1.0" encoding="utf-8"?><Error><Code>BlobNotFound</Code><Message>The specified blob does not exist.</Message></Error>';
  for (const [name, body] of Object.entries({ s3, gcs, azure })) {
    assert.equal(trivyTriesNextRepository(404, body), false, name);
  }
  assert.equal(trivyTriesNextRepository(403, s3), false, 'S3 without s3:ListBucket answers 403');
  // The code a registry would use for a missing manifest does not make Trivy move on either,
  // which is why one BLOB_UNKNOWN document serves every 404, manifests included.
  assert.equal(trivyTriesNextRepository(404, '{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}'), false);
  assert.equal(trivyTriesNextRepository(503, ''), true, 'a bare 503 is temporary');
});

test('the modules map 404 to the document', () => {
  const awsMain = readFileSync(path.join(repo, 'terraform/modules/aws/main.tf'), 'utf8');
  const awsCdn = readFileSync(path.join(repo, 'terraform/modules/aws/cdn.tf'), 'utf8');
  assert.match(awsMain, /not_found_viewer_path = "\/_trivy-mirror\/404\.json"/);
  assert.match(awsMain, /not_found_document\s+= file\("\$\{path\.module\}\/errors\/404\.json"\)/);
  assert.match(awsCdn, /error_code\s+= 404\n\s+error_caching_min_ttl = 10\n\s+response_code\s+= 404\n\s+response_page_path\s+= local\.not_found_viewer_path/);
  assert.match(awsCdn, /path_pattern\s+= "\/_trivy-mirror\/\*"/);
  const gcpMain = readFileSync(path.join(repo, 'terraform/modules/gcp/main.tf'), 'utf8');
  const gcpCdn = readFileSync(path.join(repo, 'terraform/modules/gcp/cdn.tf'), 'utf8');
  assert.match(gcpMain, /not_found_document = file\("\$\{path\.module\}\/errors\/404\.json"\)/);
  assert.match(gcpCdn, /match_response_codes\s+= \["404"\]\n\s+path\s+= "\/\$\{local\.not_found_object\}"\n\s+override_response_code = 404/);
});
