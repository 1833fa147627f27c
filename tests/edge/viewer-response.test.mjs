import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadFunction, responseEvent, defaultResponseConfig } from './harness.mjs';

const FILE = 'viewer-response.js';
const HEX = '0123456789abcdef'.repeat(4);

test('Docker-Content-Digest is added for blobs and manifests by digest (GET and HEAD alike)', () => {
  const { handler } = loadFunction(FILE, defaultResponseConfig());
  for (const uri of [`/v2/aquasecurity/trivy-db/blobs/sha256:${HEX}`, `/v2/aquasecurity/trivy-java-db/manifests/sha256:${HEX}`]) {
    const out = handler(responseEvent(uri, 200, { 'Content-Type': 'application/octet-stream', 'Content-Length': '42' }));
    assert.equal(out.headers['docker-content-digest'].value, `sha256:${HEX}`, uri);
    assert.equal(out.headers['content-type'].value, 'application/octet-stream', 'Content-Type passes through');
    assert.equal(out.headers['content-length'].value, '42');
  }
});

test('tag manifests get the digest only from stored metadata', () => {
  const { handler } = loadFunction(FILE, defaultResponseConfig());
  const bare = handler(responseEvent('/v2/aquasecurity/trivy-db/manifests/2', 200));
  assert.equal(bare.headers['docker-content-digest'], undefined);
  const meta = handler(responseEvent('/v2/aquasecurity/trivy-db/manifests/2', 200, { 'x-amz-meta-docker-content-digest': `sha256:${HEX}` }));
  assert.equal(meta.headers['docker-content-digest'].value, `sha256:${HEX}`);
});

test('no digest header on errors, malformed digests or with the toggle off', () => {
  const { handler } = loadFunction(FILE, defaultResponseConfig());
  assert.equal(handler(responseEvent(`/v2/aquasecurity/trivy-db/blobs/sha256:${HEX}`, 404)).headers['docker-content-digest'], undefined);
  assert.equal(handler(responseEvent('/v2/aquasecurity/trivy-db/blobs/sha256:abc', 200)).headers['docker-content-digest'], undefined);
  assert.equal(handler(responseEvent(`/v2/aquasecurity/trivy-db/blobs/sha256:${HEX.toUpperCase()}`, 200)).headers['docker-content-digest'], undefined);
  const off = loadFunction(FILE, defaultResponseConfig({ dockerContentDigest: false })).handler;
  assert.equal(off(responseEvent(`/v2/aquasecurity/trivy-db/blobs/sha256:${HEX}`, 200)).headers['docker-content-digest'], undefined);
});

test('VEX archive loses ETag and Last-Modified; other paths keep them', () => {
  const { handler } = loadFunction(FILE, defaultResponseConfig());
  const headers = { ETag: '"v1"', 'Last-Modified': 'Tue, 01 Jan 2030 00:00:00 GMT', 'Content-Type': 'application/gzip' };
  for (const uri of ['/main.tar.gz', '/main.zip']) {
    const out = handler(responseEvent(uri, 200, headers));
    assert.equal(out.headers.etag, undefined, uri);
    assert.equal(out.headers['last-modified'], undefined, uri);
    assert.equal(out.headers['content-type'].value, 'application/gzip');
  }
  const manifest = handler(responseEvent('/.well-known/vex-repository.json', 200, headers));
  assert.equal(manifest.headers.etag.value, '"v1"');
  const blob = handler(responseEvent(`/v2/aquasecurity/trivy-db/blobs/sha256:${HEX}`, 200, headers));
  assert.equal(blob.headers.etag.value, '"v1"');
});

test('VEX ETag is kept when the toggle is off', () => {
  const { handler } = loadFunction(FILE, defaultResponseConfig({ stripVexEtag: false }));
  assert.equal(handler(responseEvent('/main.tar.gz', 200, { ETag: '"v1"' })).headers.etag.value, '"v1"');
});
