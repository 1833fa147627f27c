// Loads a CloudFront Function file exactly as Terraform deploys it: one line `var CONFIG = {...};`
// followed by the file text without its whole-line comments (see terraform/modules/aws/cdn.tf),
// evaluated in a fresh context whose `require` offers only what cloudfront-js-2.0 offers and this
// code uses ('crypto').
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import vm from 'node:vm';
import nodeCrypto from 'node:crypto';

const here = path.dirname(fileURLToPath(import.meta.url));
export const functionsDir = path.resolve(here, '../../terraform/modules/aws/functions');

// What Terraform inlines (cdn.tf): the file without its whole-line `//` comments,
// join("\n", [for line in split("\n", file(...)) : line if !startswith(trimspace(line), "//")]).
export function deployedSource(file) {
  const text = readFileSync(path.join(functionsDir, file), 'utf8');
  return text.split('\n').filter((line) => !line.trim().startsWith('//')).join('\n');
}

// The exact code string Terraform deploys for a configuration (jsonencode and JSON.stringify differ
// only in key order, which does not change the length).
export function deployedCode(file, config) {
  return `var CONFIG = ${JSON.stringify(config)};\n${deployedSource(file)}`;
}

export function loadFunction(file, config) {
  const code = deployedCode(file, config);
  const sandbox = {
    require(name) {
      if (name === 'crypto') {
        return nodeCrypto;
      }
      throw new Error(`module not available in cloudfront-js-2.0: ${name}`);
    },
  };
  vm.createContext(sandbox);
  vm.runInContext(code, sandbox, { filename: file });
  if (typeof sandbox.handler !== 'function') {
    throw new Error(`${file} defines no handler`);
  }
  return { handler: sandbox.handler, code };
}

// What Terraform computes for basicAuthSha256: sha256("Basic " + base64("user:pass")).
export function basicHash(user, password) {
  return createHash('sha256').update(`Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`).digest('hex');
}

export function basicHeader(user, password) {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

export function requestEvent(uri, { ip = '198.51.100.7', headers = {}, method = 'GET' } = {}) {
  const h = {};
  for (const [k, v] of Object.entries(headers)) {
    h[k.toLowerCase()] = { value: v };
  }
  return {
    version: '1.0',
    context: { eventType: 'viewer-request' },
    viewer: { ip },
    request: { method, uri, querystring: {}, headers: h, cookies: {} },
  };
}

export function responseEvent(uri, statusCode, headers = {}) {
  const h = {};
  for (const [k, v] of Object.entries(headers)) {
    h[k.toLowerCase()] = { value: v };
  }
  return {
    version: '1.0',
    context: { eventType: 'viewer-response' },
    viewer: { ip: '198.51.100.7' },
    request: { method: 'GET', uri, querystring: {}, headers: {}, cookies: {} },
    response: { statusCode, statusDescription: 'OK', headers: h, cookies: {} },
  };
}

// The same configuration the module builds with its defaults (see cdn.tf locals).
export function defaultRequestConfig(overrides = {}) {
  return {
    realm: 'trivy-mirror',
    basicAuthSha256: [],
    allowCidrs: [],
    vexArchivePaths: ['/main.tar.gz', '/main.zip'],
    stripVexRevalid: true,
    pingObjectSuffix: 'v2/index.json',
    ...overrides,
  };
}

export function defaultResponseConfig(overrides = {}) {
  return {
    dockerContentDigest: true,
    vexArchivePaths: ['/main.tar.gz', '/main.zip'],
    stripVexEtag: true,
    ...overrides,
  };
}
